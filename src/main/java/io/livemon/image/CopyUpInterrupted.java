package io.livemon.image;

import java.io.IOException;

/**
 * A copy-up ({@link Image#copyUpFromBacking(long, long, Image, java.nio.ByteBuffer)}) whose read of the backing chain
 * failed part-way: the guest range below {@link #completedUpTo()} is copied (or needed no copy), the rest is not.
 * The message and the cause are the read's failure, so the errno ({@link Errno#of}) is the read's.
 */
public final class CopyUpInterrupted extends IOException {
    private static final long serialVersionUID = 1L;
    private final long completedUpTo;

    public CopyUpInterrupted(long completedUpTo, IOException cause) {
        super(cause.getMessage(), cause);
        this.completedUpTo = completedUpTo;
    }

    /** Guest offset (bytes) below which the requested range is copied: the start of the failing read's clusters. */
    public long completedUpTo() {
        return completedUpTo;
    }
}
