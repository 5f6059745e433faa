package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

/**
 * Positioned reads and writes on an image file's channel, shared by the qcow2 and raw drivers and image creation:
 * QEMU's {@code bdrv_pread}/{@code bdrv_pwrite} on the file node, with the file's own error texts.
 */
final class ChannelIo {
    private ChannelIo() {
    }

    /**
     * Largest single read or write system call for bulk data. The kernel here runs without preemption, so one
     * 8 MiB page-cache copy keeps a CPU for milliseconds; 1 MiB pieces let the monitor thread in between (two
     * unthrottled streams on two cores) at no measurable cost in throughput.
     */
    static final int IO_PIECE = 1 << 20;

    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(64 << 10).asReadOnlyBuffer();

    /**
     * Opens an image file for reading, or reading and writing.
     *
     * @throws ImageException QEMU's {@code Could not open 'F': <strerror>} (a directory: {@code Is a directory})
     */
    static FileChannel openChannel(Path path, String filename, boolean readOnly) throws ImageException {
        try {
            if (Files.isDirectory(path)) {
                throw new ImageException("Could not open '" + filename + "': Is a directory");
            }
            return readOnly ? FileChannel.open(path, StandardOpenOption.READ)
                    : FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (NoSuchFileException e) {
            throw new ImageException("Could not open '" + filename + "': No such file or directory");
        } catch (AccessDeniedException e) {
            throw new ImageException("Could not open '" + filename + "': Permission denied");
        } catch (ImageException e) {
            throw e;
        } catch (IOException e) {
            throw new ImageException("Could not open '" + filename + "': " + e.getMessage(), e);
        }
    }

    /** Reads fully; bytes past the end of the file read as zeroes. */
    static void readAt(FileChannel c, byte[] b, int off, int len, long pos) throws IOException {
        readAt(c, ByteBuffer.wrap(b), off, len, pos);
    }

    /**
     * Reads {@code len} bytes at {@code pos} into {@code b} at the absolute index {@code off} (position and limit of
     * {@code b} are not changed); bytes past the end of the file read as zeroes. A direct {@code b} is read into
     * without an intermediate copy.
     */
    static void readAt(FileChannel c, ByteBuffer b, int off, int len, long pos) throws IOException {
        for (int done = 0; done < len; ) {
            ByteBuffer bb = slice(b, off + done, Math.min(IO_PIECE, len - done));
            while (bb.hasRemaining()) {
                int n = c.read(bb, pos + done + bb.position());
                if (n < 0) {
                    zero(b, off + done + bb.position(), len - done - bb.position());
                    return;
                }
            }
            done += bb.capacity();
        }
    }

    /** {@code n} big-endian 64-bit table entries at {@code off} (an L1 or refcount table). */
    static long[] readLongs(FileChannel c, long off, int n) throws IOException {
        byte[] b = new byte[n * 8];
        readAt(c, b, 0, b.length, off);
        long[] r = new long[n];
        ByteBuffer.wrap(b).asLongBuffer().get(r);
        return r;
    }

    /** Writes {@code bb}'s remaining bytes at {@code pos} in {@link #IO_PIECE} system calls. */
    static void writeInPieces(FileChannel c, ByteBuffer bb, long pos) throws IOException {
        int len = bb.remaining();
        int base = bb.position();
        for (int done = 0; done < len; ) {
            int k = Math.min(IO_PIECE, len - done);
            writeFully(c, slice(bb, base + done, k), pos + done);
            done += k;
        }
    }

    /** Writes {@code bb}'s remaining bytes at {@code pos}, looping over short writes. */
    static void writeFully(FileChannel c, ByteBuffer bb, long pos) throws IOException {
        while (bb.hasRemaining()) {
            pos += c.write(bb, pos);
        }
    }

    /** A view of {@code b}'s bytes [off, off+len) (absolute indexes), positioned at 0. */
    static ByteBuffer slice(ByteBuffer b, int off, int len) {
        return b.duplicate().limit(off + len).position(off).slice();
    }

    /** Zeroes {@code b}'s bytes [off, off+len) (absolute indexes). */
    static void zero(ByteBuffer b, int off, int len) {
        if (b.hasArray()) {
            Arrays.fill(b.array(), b.arrayOffset() + off, b.arrayOffset() + off + len, (byte) 0);
            return;
        }
        while (len > 0) {
            int n = Math.min(len, ZEROS.capacity());
            b.put(off, ZEROS, 0, n);
            off += n;
            len -= n;
        }
    }
}
