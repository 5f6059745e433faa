package io.livemon.block;

import io.livemon.image.ForwardingImage;
import io.livemon.image.Image;
import java.io.IOException;

/**
 * A node seen as a guest sees it: an {@link Image} whose reads and writes take the node's I/O path (filters, jobs'
 * write listeners), for qemu-io and other guest emulation. Metadata questions go to the image under the filters;
 * what only the block layer may do (reopen, change the backing file, resize, empty, close) is refused.
 */
public final class GuestView extends ForwardingImage {
    private final BlockNode node;

    public GuestView(BlockNode node) {
        this.node = node;
    }

    @Override
    protected Image delegate() {
        return node.skipFilters().image();
    }

    @Override
    public long size() {
        return node.size();
    }

    @Override
    public void read(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        node.read(offset, buf, bufOffset, len);
    }

    @Override
    public void read(long offset, java.nio.ByteBuffer dst) throws IOException {
        byte[] b = new byte[dst.remaining()];
        node.read(offset, b, 0, b.length);
        dst.put(b);
    }

    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        node.write(offset, buf, bufOffset, len);
    }

    @Override
    public void writeZeroes(long offset, long len) throws IOException {
        node.writeZeroes(offset, len);
    }

    @Override
    public void writeCompressed(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        node.writeCompressed(offset, buf, bufOffset, len);
    }

    @Override
    public void discard(long offset, long len) throws IOException {
        node.discard(offset, len);
    }

    @Override
    public void flush() throws IOException {
        node.flush();
    }

    @Override
    public void setReadOnly(boolean readOnly) {
        throw new UnsupportedOperationException("a guest cannot reopen its disk");
    }

    @Override
    public void changeBackingFile(Image newBacking, String backingFileString, String backingFormat) {
        throw new UnsupportedOperationException("a guest cannot change the backing file");
    }

    @Override
    public void setBacking(Image backing) {
        throw new UnsupportedOperationException("a guest cannot change the backing file");
    }

    @Override
    public void resize(long newSize) {
        throw new UnsupportedOperationException("a guest cannot resize its disk");
    }

    @Override
    public void makeEmpty() {
        throw new UnsupportedOperationException("a guest cannot empty its disk");
    }

    /** The guest does not own the disk: closing its view closes nothing. */
    @Override
    public void close() {
    }
}
