package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/** A raw image: the file is the disk. Every byte is DATA in this layer. */
final class RawImage implements Image {
    private final String filename;
    private final Path path;
    private final ReentrantReadWriteLock opLock = new ReentrantReadWriteLock(); // guards channel/readOnly: I/O takes read, reopen/resize/close take write
    /** End (bytes) of the highest write or discard since open: QEMU's wr_highest_offset (file and format node alike). */
    private final java.util.concurrent.atomic.AtomicLong writeEnd = new java.util.concurrent.atomic.AtomicLong();
    private volatile FileChannel ch;
    /** This image's claim in QEMU's locking protocol (see {@link ImageLocks}); released at close. */
    private final ImageLocks.Lease lease;
    private volatile boolean readOnly;
    private volatile long size;

    /** Wraps every channel opened on the file (identity, or blkdebug's error injection). */
    private final java.util.function.UnaryOperator<FileChannel> wrapper;

    private RawImage(Path path, String filename, boolean readOnly,
                     java.util.function.UnaryOperator<FileChannel> wrapper) throws IOException {
        this(path, filename, readOnly, wrapper, readOnly ? ImageLocks.Mode.READ : ImageLocks.Mode.WRITE);
    }

    private RawImage(Path path, String filename, boolean readOnly,
                     java.util.function.UnaryOperator<FileChannel> wrapper, ImageLocks.Mode mode) throws IOException {
        this.path = path;
        this.filename = filename;
        this.readOnly = readOnly;
        this.wrapper = wrapper;
        this.ch = wrapper.apply(ChannelIo.openChannel(path, filename, readOnly));
        try {
            this.lease = ImageLocks.acquire(path, filename, mode, true, () -> ch.isOpen());
        } catch (StricterThanQemu e) {
            long fileSize = -1;
            try {
                fileSize = ch.size();
            } catch (java.io.IOException ignored) {
                // the size stays unknown
            }
            ImageLocks.close(ch, path);
            throw e.withImageSize(fileSize);
        } catch (ImageException e) {
            ImageLocks.close(ch, path);
            throw e;
        }
        this.size = ch.size();
        this.blkdebug = ch instanceof BlkdebugChannel b ? b.rules() : null;
    }

    /** The blkdebug layer the wrapper puts under every channel, or null. */
    private final BlkdebugRules blkdebug;

    @Override
    public BlkdebugRules blkdebugRules() {
        return blkdebug;
    }

    @Override
    public void setBackendWritePermission(boolean held) {
        lease.setBackendWrite(held);
    }

    /** Opens {@code path} (shown as {@code filename}) as a raw image. */
    public static RawImage open(Path path, String filename, boolean readOnly) throws IOException {
        return new RawImage(path, filename, readOnly, c -> c);
    }

    /** Opens {@code path} as a raw image whose file channels pass {@code wrapper} first (blkdebug). */
    /** A raw job target opened read-write before anything attaches to it ({@link Images#openJobTarget}). */
    static RawImage openUnattached(Path path, String filename) throws IOException {
        return new RawImage(path, filename, false, c -> c, ImageLocks.Mode.WRITE_UNATTACHED);
    }

    static RawImage openWrapped(Path path, String filename, boolean readOnly,
                                java.util.function.UnaryOperator<FileChannel> wrapper) throws IOException {
        return new RawImage(path, filename, readOnly, wrapper);
    }

    static void create(Path path, long size) throws IOException {
        // sparse, as qemu-img create -f raw leaves it: no data block allocated
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(path.toFile(), "rw")) {
            f.setLength(size);
        }
    }

    @Override public String filename() { return filename; }
    @Override public Path path() { return path; }
    @Override public String format() { return "raw"; }
    @Override public long size() { return size; }
    @Override public boolean isReadOnly() { return readOnly; }
    @Override public Image backing() { return null; }
    @Override public String backingFileString() { return null; }
    @Override public String backingFormatString() { return null; }
    @Override public void setBacking(Image backing) {
        if (backing != null) {
            throw new IllegalArgumentException("raw images have no backing file");
        }
    }

    @Override
    public void setReadOnly(boolean ro) throws IOException {
        opLock.writeLock().lock();
        try {
            if (ro == readOnly) {
                return;
            }
            if (!ro) {
                lease.change(true);
            }
            FileChannel n = wrapper.apply(ChannelIo.openChannel(path, filename, ro));
            ch.close();
            ch = n;
            readOnly = ro;
            lease.change(!ro);
            lease.reassert(); // closing the old descriptor dropped the process's record locks
        } finally {
            opLock.writeLock().unlock();
        }
    }

    private void check(long offset, long len) throws ImageException {
        if (offset < 0 || len < 0 || offset + len > size) {
            throw new ImageException("Request out of range for '" + filename + "': offset " + offset + " length " + len
                    + " size " + size);
        }
    }

    private void checkWritable() throws ImageException {
        if (readOnly) {
            throw new ImageException("Block node is read-only");
        }
    }

    @Override
    public void read(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        read(offset, ByteBuffer.wrap(buf, bufOffset, len));
    }

    /** Reads straight into {@code dst} (no intermediate copy when it is direct). */
    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        opLock.readLock().lock();
        try {
            int len = dst.remaining();
            check(offset, len);
            ByteBuffer bb = dst;
            long pos = offset;
            while (bb.hasRemaining()) {
                int n = ch.read(bb, pos);
                if (n < 0) {
                    while (bb.hasRemaining()) {
                        bb.put((byte) 0);
                    }
                    break;
                }
                pos += n;
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        opLock.readLock().lock();
        try {
            checkWritable();
            check(offset, len);
            ChannelIo.writeFully(ch, ByteBuffer.wrap(buf, bufOffset, len), offset);
            writeEnd.accumulateAndGet(offset + len, Math::max);
        } finally {
            opLock.readLock().unlock();
        }
    }

    @Override
    public long highestWriteEnd() {
        return writeEnd.get();
    }

    @Override
    public void writeZeroes(long offset, long len) throws IOException {
        byte[] z = new byte[(int) Math.min(len, 1 << 20)];
        long done = 0;
        while (done < len) {
            int n = (int) Math.min(z.length, len - done);
            write(offset + done, z, 0, n);
            done += n;
        }
    }

    @Override
    public void discard(long offset, long len) throws IOException {
        opLock.readLock().lock();
        try {
            checkWritable();
            check(offset, len);
            writeEnd.accumulateAndGet(offset + len, Math::max);
        } finally {
            opLock.readLock().unlock();
        }
    }

    @Override
    public void flush() throws IOException {
        opLock.readLock().lock();
        try {
            if (!readOnly) {
                ch.force(true);
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    @Override
    public BlockStatus blockStatus(long offset, long maxLen) {
        long n = Math.max(0, Math.min(maxLen, size - offset));
        return new BlockStatus(BlockStatus.Kind.DATA, n);
    }

    @Override
    public Allocation isAllocatedAbove(long offset, long maxLen, Image base) {
        long n = Math.max(0, Math.min(maxLen, size - offset));
        return new Allocation(base != this, n);
    }

    @Override
    public long copyUpFromBacking(long offset, long len) {
        return 0;
    }

    @Override
    public void changeBackingFile(Image newBacking, String backingFileString, String backingFormat) throws IOException {
        throw new ImageException("Operation not supported: raw images have no backing file");
    }

    @Override
    public void resize(long newSize) throws IOException {
        opLock.writeLock().lock();
        try {
            checkWritable();
            if (newSize < size) {
                ch.truncate(newSize);
            } else if (newSize > size) {
                ch.write(ByteBuffer.wrap(new byte[1]), newSize - 1);
            }
            size = newSize;
        } finally {
            opLock.writeLock().unlock();
        }
    }

    @Override
    public ImageInfo info() throws IOException {
        return new ImageInfo("raw", size, 0, null, 0, false, false, false, Files.size(path));
    }

    @Override
    public void close() throws IOException {
        if (blkdebug != null) {
            blkdebug.releaseAll(); // a request held at a breakpoint holds the op lock: let it go first
        }
        opLock.writeLock().lock();
        try {
            ch.close();
            lease.release();
        } finally {
            opLock.writeLock().unlock();
        }
    }

    @Override
    public String toString() {
        return "RawImage[" + filename + "]";
    }
}
