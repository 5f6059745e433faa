package io.livemon.qmp;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.FileChannel;

/**
 * A byte channel over file descriptors livemon inherited from the process that started it: QEMU's
 * {@code -chardev socket,fd=N} (iotests passes one end of a connected socket pair as fd 3) and {@code -qmp stdio}.
 * Java has no public way to wrap a descriptor number, so the number is set into a {@link FileDescriptor} by
 * reflection; that needs {@code --add-opens java.base/java.io=ALL-UNNAMED}, which the {@code ./livemon} launcher
 * passes. Reads and writes are plain read(2)/write(2), which work on sockets as on files.
 */
final class InheritedChannel implements ByteChannel {
    private final FileChannel in;
    private final FileChannel out;

    private InheritedChannel(FileChannel in, FileChannel out) {
        this.in = in;
        this.out = out;
    }

    /** The descriptor {@code fd}, read and written. */
    static ByteChannel of(int fd) throws IOException {
        return of(fd, fd);
    }

    /** Reads from {@code readFd}, writes to {@code writeFd}. */
    static ByteChannel of(int readFd, int writeFd) throws IOException {
        return new InheritedChannel(new FileInputStream(descriptor(readFd)).getChannel(),
                new FileOutputStream(descriptor(writeFd)).getChannel());
    }

    private static FileDescriptor descriptor(int fd) throws IOException {
        FileDescriptor d = new FileDescriptor();
        try {
            Field f = FileDescriptor.class.getDeclaredField("fd");
            f.setAccessible(true);
            f.setInt(d, fd);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IOException("cannot use inherited file descriptor " + fd + " (start livemon with ./livemon, "
                    + "which passes --add-opens java.base/java.io=ALL-UNNAMED): " + e.getMessage(), e);
        }
        if (!d.valid()) {
            throw new IOException("file descriptor " + fd + " is not open");
        }
        return d;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        return in.read(dst);
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        return out.write(src);
    }

    @Override
    public boolean isOpen() {
        return in.isOpen() && out.isOpen();
    }

    @Override
    public void close() throws IOException {
        try {
            in.close();
        } finally {
            out.close();
        }
    }
}
