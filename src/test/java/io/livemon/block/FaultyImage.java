package io.livemon.block;

import io.livemon.image.Allocation;
import io.livemon.image.BlockStatus;
import io.livemon.image.Image;
import io.livemon.image.ImageInfo;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An image whose stream copy fails (as a read error through the chain would) when it touches a given range, a
 * given number of times; everything else goes to the real image.
 */
final class FaultyImage implements Image {
    private final Image inner;
    private final long badStart;
    private final long badEnd;
    private final AtomicInteger failuresLeft;
    private final String message;

    FaultyImage(Image inner, long badStart, long badLen, int failures, String message) {
        this.inner = inner;
        this.badStart = badStart;
        this.badEnd = badStart + badLen;
        this.failuresLeft = new AtomicInteger(failures);
        this.message = message;
    }

    private void maybeFail(long offset, long len) throws IOException {
        if (offset < badEnd && offset + len > badStart && failuresLeft.getAndDecrement() > 0) {
            throw new IOException(message);
        }
    }

    @Override
    public long copyUpFromBacking(long offset, long len) throws IOException {
        maybeFail(offset, len);
        return inner.copyUpFromBacking(offset, len);
    }

    @Override
    public long copyUpFromBacking(long offset, long len, Image base) throws IOException {
        maybeFail(offset, len);
        return inner.copyUpFromBacking(offset, len, base);
    }

    @Override
    public String filename() {
        return inner.filename();
    }

    @Override
    public Path path() {
        return inner.path();
    }

    @Override
    public String format() {
        return inner.format();
    }

    @Override
    public long size() {
        return inner.size();
    }

    @Override
    public boolean isReadOnly() {
        return inner.isReadOnly();
    }

    @Override
    public void setReadOnly(boolean readOnly) throws IOException {
        inner.setReadOnly(readOnly);
    }

    @Override
    public Image backing() {
        return inner.backing();
    }

    @Override
    public String backingFileString() {
        return inner.backingFileString();
    }

    @Override
    public String backingFormatString() {
        return inner.backingFormatString();
    }

    @Override
    public void read(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        inner.read(offset, buf, bufOffset, len);
    }

    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        inner.write(offset, buf, bufOffset, len);
    }

    @Override
    public void writeZeroes(long offset, long len) throws IOException {
        inner.writeZeroes(offset, len);
    }

    @Override
    public void discard(long offset, long len) throws IOException {
        inner.discard(offset, len);
    }

    @Override
    public void flush() throws IOException {
        inner.flush();
    }

    @Override
    public BlockStatus blockStatus(long offset, long maxLen) throws IOException {
        return inner.blockStatus(offset, maxLen);
    }

    @Override
    public Allocation isAllocatedAbove(long offset, long maxLen, Image base) throws IOException {
        return inner.isAllocatedAbove(offset, maxLen, base);
    }

    @Override
    public void changeBackingFile(Image newBacking, String backingFileString, String backingFormat)
            throws IOException {
        inner.changeBackingFile(newBacking, backingFileString, backingFormat);
    }

    @Override
    public void setBacking(Image backing) {
        inner.setBacking(backing);
    }

    @Override
    public void makeEmpty() throws IOException {
        inner.makeEmpty();
    }

    @Override
    public void resize(long newSize) throws IOException {
        inner.resize(newSize);
    }

    @Override
    public ImageInfo info() throws IOException {
        return inner.info();
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }
}
