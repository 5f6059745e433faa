package io.livemon.block;

import io.livemon.image.Allocation;
import io.livemon.image.BlockStatus;
import io.livemon.image.Image;
import io.livemon.image.ImageInfo;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A node seen as a guest sees it: an {@link Image} whose reads and writes take the node's I/O path (filters, jobs'
 * write listeners), for qemu-io and other guest emulation. Metadata questions go to the image under the filters.
 */
public final class GuestView implements Image {
    private final BlockNode node;

    public GuestView(BlockNode node) {
        this.node = node;
    }

    private Image image() {
        return node.skipFilters().image();
    }

    @Override
    public String filename() {
        return image().filename();
    }

    @Override
    public Path path() {
        return image().path();
    }

    @Override
    public String format() {
        return image().format();
    }

    @Override
    public long size() {
        return node.size();
    }

    @Override
    public boolean isReadOnly() {
        return image().isReadOnly();
    }

    @Override
    public void setReadOnly(boolean readOnly) {
        throw new UnsupportedOperationException("a guest cannot reopen its disk");
    }

    @Override
    public Image backing() {
        return image().backing();
    }

    @Override
    public String backingFileString() {
        return image().backingFileString();
    }

    @Override
    public String backingFormatString() {
        return image().backingFormatString();
    }

    @Override
    public void read(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        node.read(offset, buf, bufOffset, len);
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
    public void discard(long offset, long len) throws IOException {
        node.discard(offset, len);
    }

    @Override
    public void flush() throws IOException {
        node.flush();
    }

    @Override
    public BlockStatus blockStatus(long offset, long maxLen) throws IOException {
        return image().blockStatus(offset, maxLen);
    }

    @Override
    public Allocation isAllocatedAbove(long offset, long maxLen, Image base) throws IOException {
        return image().isAllocatedAbove(offset, maxLen, base);
    }

    @Override
    public long copyUpFromBacking(long offset, long len) throws IOException {
        return image().copyUpFromBacking(offset, len);
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

    @Override
    public ImageInfo info() throws IOException {
        return image().info();
    }

    /** The guest does not own the disk: closing its view closes nothing. */
    @Override
    public void close() {
    }
}
