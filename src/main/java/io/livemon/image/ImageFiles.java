package io.livemon.image;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;

/**
 * What kind of file an image name refers to, checked before livemon opens or creates it, so that a FIFO, a socket, a
 * directory or a device never reaches an open that could block forever or a write that could harm it.
 *
 * <p>QEMU's file driver (block/file-posix.c) opens first and checks afterwards; for a FIFO its open blocks until a
 * writer or reader appears, which hangs the whole monitor. livemon looks at {@code st_mode} first and answers with the
 * message QEMU gives once the open returns.
 */
final class ImageFiles {
    /** Format type bits of st_mode (POSIX). */
    private static final int S_IFMT = 0170000;
    private static final int S_IFDIR = 0040000;
    private static final int S_IFCHR = 0020000;
    private static final int S_IFBLK = 0060000;
    private static final int S_IFREG = 0100000;
    private static final int S_IFSOCK = 0140000;

    private ImageFiles() {
    }

    /** st_mode's file type of {@code p} (symbolic links followed), or 0 when it cannot be read. */
    private static int type(Path p) {
        try {
            return ((Integer) Files.getAttribute(p, "unix:mode")) & S_IFMT;
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return Files.isDirectory(p) ? S_IFDIR : Files.isRegularFile(p) ? S_IFREG : 0;
        }
    }

    /**
     * Refuses to open anything but a regular file as an image.
     *
     * @throws ImageException {@code 'file' driver requires 'NAME' to be a regular file} (QEMU 7.2's raw_open_common
     *                        text), for directories, FIFOs and devices; {@code Could not open 'NAME': No such device
     *                        or address} for a socket (QEMU's open fails with ENXIO)
     */
    static void checkOpenable(Path p, String filename) throws ImageException {
        int t = type(p);
        if (t == S_IFSOCK) {
            throw new ImageException("Could not open '" + filename + "': No such device or address"); // ENXIO
        }
        if (t != S_IFREG && t != 0) {
            throw new ImageException("'file' driver requires '" + filename + "' to be a regular file");
        }
    }

    /**
     * Refuses to create an image over anything but a regular file, with QEMU 7.2's messages for the same targets:
     * a directory is {@code Could not create 'F': Is a directory}; a FIFO {@code Could not resize file: Invalid
     * argument} (QEMU's ftruncate fails); a socket {@code Could not create 'F': No such device or address}; a character device
     * {@code Cannot grow device files} (raw) or {@code Image is not in qcow2 format} (qcow2: QEMU's header vanished
     * into the device); a block device is refused outright, livemon does not format devices.
     *
     * @param format "raw" or "qcow2", for the message only
     */
    static void checkCreatable(Path p, String filename, String format) throws ImageException {
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS) && !Files.exists(p)) {
            return;
        }
        switch (type(p)) {
            case S_IFREG:
                return;
            case S_IFDIR:
                throw new ImageException("Could not create '" + filename + "': Is a directory");
            case S_IFCHR:
                throw new ImageException("qcow2".equals(format) ? "Image is not in qcow2 format"
                        : "Cannot grow device files");
            case S_IFSOCK:
                throw new ImageException("Could not create '" + filename + "': No such device or address");
            case S_IFBLK:
                throw new ImageException("Could not create '" + filename + "': livemon does not format block devices");
            default:
                throw new ImageException("Could not resize file: Invalid argument");
        }
    }
}
