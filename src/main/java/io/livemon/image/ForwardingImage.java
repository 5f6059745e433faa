package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * An image that passes every request to another one, for wrappers that change a few requests only (a guest's view
 * of a node, fault injection in tests). Subclasses say which image in {@link #delegate()}, which may change over time.
 */
public abstract class ForwardingImage implements Image {

    /** The image requests go to now. */
    protected abstract Image delegate();

    @Override
    public String filename() {
        return delegate().filename();
    }

    @Override
    public Path path() {
        return delegate().path();
    }

    @Override
    public String format() {
        return delegate().format();
    }

    @Override
    public long size() {
        return delegate().size();
    }

    @Override
    public boolean isReadOnly() {
        return delegate().isReadOnly();
    }

    @Override
    public void setReadOnly(boolean readOnly) throws IOException {
        delegate().setReadOnly(readOnly);
    }

    @Override
    public Image backing() {
        return delegate().backing();
    }

    @Override
    public String backingFileString() {
        return delegate().backingFileString();
    }

    @Override
    public String backingFormatString() {
        return delegate().backingFormatString();
    }

    @Override
    public void read(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        delegate().read(offset, buf, bufOffset, len);
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        delegate().read(offset, dst);
    }

    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        delegate().write(offset, buf, bufOffset, len);
    }

    @Override
    public long highestWriteEnd() {
        return delegate().highestWriteEnd();
    }

    @Override
    public long highestHostWriteEnd() {
        return delegate().highestHostWriteEnd();
    }

    @Override
    public boolean supportsCompressedWrites() {
        return delegate().supportsCompressedWrites();
    }

    @Override
    public void writeCompressed(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        delegate().writeCompressed(offset, buf, bufOffset, len);
    }

    @Override
    public void writeZeroes(long offset, long len) throws IOException {
        delegate().writeZeroes(offset, len);
    }

    @Override
    public void discard(long offset, long len) throws IOException {
        delegate().discard(offset, len);
    }

    @Override
    public void flush() throws IOException {
        delegate().flush();
    }

    @Override
    public BlockStatus blockStatus(long offset, long maxLen) throws IOException {
        return delegate().blockStatus(offset, maxLen);
    }

    @Override
    public BlockStatus qemuBlockStatus(long offset, long maxLen) throws IOException {
        return delegate().qemuBlockStatus(offset, maxLen);
    }

    @Override
    public Allocation isAllocatedAbove(long offset, long maxLen, Image base) throws IOException {
        return delegate().isAllocatedAbove(offset, maxLen, base);
    }

    @Override
    public long copyUpFromBacking(long offset, long len) throws IOException {
        return delegate().copyUpFromBacking(offset, len);
    }

    @Override
    public long copyUpFromBacking(long offset, long len, Image base) throws IOException {
        return delegate().copyUpFromBacking(offset, len, base);
    }

    @Override
    public long copyUpFromBacking(long offset, long len, Image base, ByteBuffer buffer) throws IOException {
        return delegate().copyUpFromBacking(offset, len, base, buffer);
    }

    @Override
    public void changeBackingFile(Image newBacking, String backingFileString, String backingFormat)
            throws IOException {
        delegate().changeBackingFile(newBacking, backingFileString, backingFormat);
    }

    @Override
    public void setBacking(Image backing) {
        delegate().setBacking(backing);
    }

    @Override
    public void setBackendWritePermission(boolean held) {
        delegate().setBackendWritePermission(held);
    }

    @Override
    public BlkdebugRules blkdebugRules() {
        return delegate().blkdebugRules();
    }

    @Override
    public void makeEmpty() throws IOException {
        delegate().makeEmpty();
    }

    @Override
    public void resize(long newSize) throws IOException {
        delegate().resize(newSize);
    }

    @Override
    public ImageInfo info() throws IOException {
        return delegate().info();
    }

    @Override
    public java.util.List<BitmapInfo> bitmapInfo() throws IOException {
        return delegate().bitmapInfo();
    }

    @Override
    public void close() throws IOException {
        delegate().close();
    }
}
