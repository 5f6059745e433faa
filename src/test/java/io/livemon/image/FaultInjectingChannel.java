package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * A FileChannel that delegates to a real one and fails the N-th write (counting every write/truncate call) or the
 * N-th force with an IOException, in the style of H2's FilePathUnstable. In {@link Mode#CRASH} every write and
 * force after the injected failure fails too (the process is "dying": what reached the file is a prefix of the
 * writes); in {@link Mode#TRANSIENT} only the one call fails and the engine's own error handling runs on.
 * {@link #crash()} closes the real channel without anything the engine would do on a clean close.
 */
final class FaultInjectingChannel extends FileChannel {
    enum Mode { CRASH, TRANSIENT }

    private final FileChannel d;
    private final long failWriteAt;
    private final long failForceAt;
    private final Mode mode;
    private long writes;
    private long forces;
    private boolean failed;

    /** failWriteAt / failForceAt are 1-based; 0 = never. */
    FaultInjectingChannel(FileChannel delegate, long failWriteAt, long failForceAt, Mode mode) {
        this.d = delegate;
        this.failWriteAt = failWriteAt;
        this.failForceAt = failForceAt;
        this.mode = mode;
    }

    synchronized long writes() {
        return writes;
    }

    synchronized long forces() {
        return forces;
    }

    synchronized boolean failed() {
        return failed;
    }

    /** Simulated crash: drop the real channel; nothing is flushed or rewritten. */
    void crash() throws IOException {
        d.close();
    }

    private synchronized void beforeWrite() throws IOException {
        if (failed && mode == Mode.CRASH) {
            throw new IOException("injected: channel dead after failure");
        }
        writes++;
        if (writes == failWriteAt) {
            failed = true;
            throw new IOException("injected failure of write #" + writes);
        }
    }

    private synchronized void beforeForce() throws IOException {
        if (failed && mode == Mode.CRASH) {
            throw new IOException("injected: channel dead after failure");
        }
        forces++;
        if (forces == failForceAt) {
            failed = true;
            throw new IOException("injected failure of force #" + forces);
        }
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        return d.read(dst);
    }

    @Override
    public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
        return d.read(dsts, offset, length);
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        beforeWrite();
        return d.write(src);
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        beforeWrite();
        return d.write(srcs, offset, length);
    }

    @Override
    public long position() throws IOException {
        return d.position();
    }

    @Override
    public FileChannel position(long newPosition) throws IOException {
        d.position(newPosition);
        return this;
    }

    @Override
    public long size() throws IOException {
        return d.size();
    }

    @Override
    public FileChannel truncate(long size) throws IOException {
        beforeWrite();
        d.truncate(size);
        return this;
    }

    @Override
    public void force(boolean metaData) throws IOException {
        beforeForce();
        d.force(metaData);
    }

    @Override
    public long transferTo(long position, long count, WritableByteChannel target) throws IOException {
        return d.transferTo(position, count, target);
    }

    @Override
    public long transferFrom(ReadableByteChannel src, long position, long count) throws IOException {
        beforeWrite();
        return d.transferFrom(src, position, count);
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        return d.read(dst, position);
    }

    @Override
    public int write(ByteBuffer src, long position) throws IOException {
        beforeWrite();
        return d.write(src, position);
    }

    @Override
    public MappedByteBuffer map(MapMode mode, long position, long size) throws IOException {
        throw new UnsupportedOperationException("map is not fault-injected");
    }

    @Override
    public FileLock lock(long position, long size, boolean shared) throws IOException {
        return d.lock(position, size, shared);
    }

    @Override
    public FileLock tryLock(long position, long size, boolean shared) throws IOException {
        return d.tryLock(position, size, shared);
    }

    @Override
    protected void implCloseChannel() throws IOException {
        d.close();
    }
}
