package io.livemon.image;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFileAttributes;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Creating an image file without ever harming the file that was there: QEMU's create-time checks, then the new image
 * written under a temporary name beside the target and renamed over it.
 *
 * <p>QEMU 7.2 (block/file-posix.c, raw_co_create) opens the target without truncating, takes its write and resize
 * permissions under the image locking protocol and refuses with {@code Failed to get "write" lock} when anything holds
 * the file open, before it truncates. livemon takes the same locks ({@link ImageLocks}, which also knows every image
 * this process has open, by file identity: device and inode, so {@code ./a.img}, a symbolic link or a hard link to an
 * open image are all refused), and goes one step further: the new image never overwrites the old bytes in place, so a
 * process killed during creation leaves either the old file or a complete new image (a deliberate difference, listed
 * in ../shared/README.md).
 *
 * <p>Targets that are not regular files get QEMU's answers without being opened or written
 * ({@link ImageFiles#checkCreatable}).
 */
final class ImageCreation {
    /** Writes the new image's bytes into a fresh, empty file. */
    interface Body {
        /**
         * @param file     the temporary file to write (exists, empty)
         * @param filename the name the user gave, for messages
         */
        void write(Path file, String filename) throws IOException;
    }

    private ImageCreation() {
    }

    /**
     * Creates {@code filename} (relative to {@code cwd}) as {@code format} ("qcow2" or "raw", for the messages only):
     * checks the target, writes the image with {@code body} under a temporary name in the same directory, makes it
     * durable and renames it over the target.
     *
     * @throws ImageException with QEMU's text: {@code Could not create 'F': No such file or directory} (missing
     *                        directory), {@code ... Is a directory}, {@code ... Permission denied},
     *                        {@code Failed to get "write" lock\nIs another process using the image [F]?} (the file is
     *                        open in livemon or locked by another process), and the non-regular-file errors above.
     *                        The existing file is unchanged whenever this throws.
     */
    static void create(Path cwd, String filename, String format, Body body) throws IOException {
        Path p = cwd.resolve(filename);
        Path target = resolveLinks(p, filename);
        Path dir = target.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new ImageException("Could not create '" + filename + "': No such file or directory");
        }
        ImageLocks.Lease lease = null;
        PosixFileAttributes old = null;
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
            ImageFiles.checkCreatable(target, filename, format);
            try {
                old = Files.readAttributes(target, PosixFileAttributes.class);
            } catch (UnsupportedOperationException e) {
                old = null;
            }
            // QEMU opens the target for writing: a file the user may not write is refused, even where the directory
            // would let a rename replace it
            if (!Files.isWritable(target)) {
                throw new ImageException("Could not create '" + filename + "': Permission denied");
            }
            // QEMU's write + resize permissions, taken before anything is written: refuses a file that this process
            // has open (any name for the same inode) or that another process holds.
            lease = ImageLocks.acquire(target, filename, ImageLocks.Mode.CREATE, false, () -> true);
        }
        Path tmp = null;
        try {
            tmp = temporaryBeside(target, filename);
            body.write(tmp, filename);
            try (FileChannel c = FileChannel.open(tmp, StandardOpenOption.READ)) {
                c.force(true);
            }
            if (old != null) {
                copyOwnership(old, tmp);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            } catch (java.nio.file.FileSystemException e) {
                if (old == null || e instanceof AccessDeniedException) {
                    throw e;
                }
                // A target that cannot be replaced by name (a bind-mounted file: EBUSY) is rewritten in place, as
                // QEMU writes it; the new image is complete beside it first, so only this copy is not atomic.
                copyInPlace(tmp, target);
            }
            tmp = null;
            syncDirectory(dir);
        } finally {
            if (tmp != null) {
                Files.deleteIfExists(tmp);
            }
            if (lease != null) {
                lease.release();
            }
        }
    }

    private static void copyInPlace(Path from, Path to) throws IOException {
        try (FileChannel in = FileChannel.open(from, StandardOpenOption.READ);
             FileChannel out = FileChannel.open(to, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            long n = in.size();
            for (long pos = 0; pos < n; ) {
                pos += out.transferFrom(in, pos, n - pos);
            }
            out.force(true);
        }
        Files.deleteIfExists(from);
    }

    /** The file a name finally refers to (QEMU's open follows symbolic links, so does creation). */
    private static Path resolveLinks(Path p, String filename) throws IOException {
        Path cur = p;
        for (int i = 0; Files.isSymbolicLink(cur); i++) {
            if (i == 40) { // Linux's MAXSYMLINKS
                throw new ImageException("Could not create '" + filename + "': Too many levels of symbolic links");
            }
            Path link = Files.readSymbolicLink(cur);
            Path parent = cur.toAbsolutePath().getParent();
            cur = parent == null ? link : parent.resolve(link);
        }
        return cur;
    }

    private static Path temporaryBeside(Path target, String filename) throws ImageException {
        Path dir = target.toAbsolutePath().getParent();
        String base = "." + target.getFileName() + ".livemon-";
        for (int attempt = 0; attempt < 100; attempt++) {
            Path tmp = dir.resolve(base + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 16) + ".tmp");
            try {
                Files.createFile(tmp);
                return tmp;
            } catch (FileAlreadyExistsException e) {
                // try another name
            } catch (AccessDeniedException e) {
                throw new ImageException("Could not create '" + filename + "': Permission denied");
            } catch (NoSuchFileException e) {
                throw new ImageException("Could not create '" + filename + "': No such file or directory");
            } catch (IOException e) {
                throw new ImageException("Could not create '" + filename + "': " + e.getMessage(), e);
            }
        }
        throw new ImageException("Could not create '" + filename + "': File exists");
    }

    /** The replaced file's permissions, owner and group carry over to the new image, as an in-place rewrite keeps them. */
    private static void copyOwnership(PosixFileAttributes old, Path tmp) {
        try {
            Files.setPosixFilePermissions(tmp, old.permissions());
        } catch (IOException | UnsupportedOperationException e) {
            // the new file keeps the default permissions
        }
        try {
            Files.setOwner(tmp, old.owner());
            Files.getFileAttributeView(tmp, java.nio.file.attribute.PosixFileAttributeView.class)
                    .setGroup(old.group());
        } catch (IOException | UnsupportedOperationException | NullPointerException e) {
            // not permitted for an unprivileged user: the new file is the user's own
        }
    }

    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            // some file systems cannot sync a directory; the rename itself is atomic
        }
    }
}
