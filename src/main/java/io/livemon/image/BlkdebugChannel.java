package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * The blkdebug protocol layer: a FileChannel over an image file that fails the requests its {@link BlkdebugRules}
 * select (positional reads and writes by the host-file range they touch, flushes) with the rule's errno, and passes
 * everything else to the real channel. Every access of a qcow2 layer goes through positional calls, so data and
 * metadata requests are both seen, as QEMU's blkdebug sees both.
 */
final class BlkdebugChannel extends FileChannel {
    private final FileChannel d;
    private final BlkdebugRules rules;

    public BlkdebugChannel(FileChannel delegate, BlkdebugRules rules) {
        this.d = delegate;
        this.rules = rules;
    }

    public BlkdebugRules rules() {
        return rules;
    }

    private void check(BlkdebugRules.IoType type, long offset, long len) throws IOException {
        IOException e = rules.check(type, offset, len);
        if (e != null) {
            throw e;
        }
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        check(BlkdebugRules.IoType.READ, position, dst.remaining());
        return d.read(dst, position);
    }

    @Override
    public int write(ByteBuffer src, long position) throws IOException {
        check(BlkdebugRules.IoType.WRITE, position, src.remaining());
        return d.write(src, position);
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        check(BlkdebugRules.IoType.READ, d.position(), dst.remaining());
        return d.read(dst);
    }

    @Override
    public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
        check(BlkdebugRules.IoType.READ, d.position(), remaining(dsts, offset, length));
        return d.read(dsts, offset, length);
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        check(BlkdebugRules.IoType.WRITE, d.position(), src.remaining());
        return d.write(src);
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        check(BlkdebugRules.IoType.WRITE, d.position(), remaining(srcs, offset, length));
        return d.write(srcs, offset, length);
    }

    private static long remaining(ByteBuffer[] b, int offset, int length) {
        long n = 0;
        for (int i = offset; i < offset + length; i++) {
            n += b[i].remaining();
        }
        return n;
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
        d.truncate(size);
        return this;
    }

    @Override
    public void force(boolean metaData) throws IOException {
        check(BlkdebugRules.IoType.FLUSH, 0, 0);
        d.force(metaData);
    }

    @Override
    public long transferTo(long position, long count, WritableByteChannel target) throws IOException {
        check(BlkdebugRules.IoType.READ, position, count);
        return d.transferTo(position, count, target);
    }

    @Override
    public long transferFrom(ReadableByteChannel src, long position, long count) throws IOException {
        check(BlkdebugRules.IoType.WRITE, position, count);
        return d.transferFrom(src, position, count);
    }

    @Override
    public MappedByteBuffer map(MapMode mode, long position, long size) throws IOException {
        throw new UnsupportedOperationException("blkdebug does not map files");
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
