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

    /**
     * A guest write. With {@code detect-zeroes=on|unmap} a buffer of zeroes is written as zeroes instead of data
     * (QEMU's bdrv_aligned_pwritev), which for qcow2 means zero clusters where whole clusters are covered.
     */
    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        if (len > 0 && !node.skipFilters().detectZeroes().equals("off") && allZero(buf, bufOffset, len)) {
            node.writeZeroes(offset, len);
            return;
        }
        node.write(offset, buf, bufOffset, len);
    }

    private static boolean allZero(byte[] buf, int off, int len) {
        for (int i = off; i < off + len; i++) {
            if (buf[i] != 0) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void writeZeroes(long offset, long len) throws IOException {
        node.writeZeroes(offset, len);
    }

    /**
     * A guest discard: passed to the image only with {@code discard=unmap}; with QEMU's default (ignore) it succeeds
     * and changes neither what the guest reads nor the image (block/io.c bdrv_co_pdiscard without BDRV_O_UNMAP).
     */
    @Override
    public void writeCompressed(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        node.writeCompressed(offset, buf, bufOffset, len);
    }

    @Override
    public void discard(long offset, long len) throws IOException {
        if (!node.skipFilters().discardUnmap()) {
            return;
        }
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
