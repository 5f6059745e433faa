package io.livemon.block;

import io.livemon.image.ForwardingImage;
import io.livemon.image.Image;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An image whose stream copy fails (as a read error through the chain would) when it touches a given range, a
 * given number of times; everything else goes to the real image.
 */
final class FaultyImage extends ForwardingImage {
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

    @Override
    protected Image delegate() {
        return inner;
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
    public long copyUpFromBacking(long offset, long len, Image base, java.nio.ByteBuffer buffer) throws IOException {
        maybeFail(offset, len);
        return inner.copyUpFromBacking(offset, len, base, buffer);
    }
}
