package io.livemon.image;

/**
 * A lock refusal by livemon's rule where QEMU 7.2 would have let the opener in (its holder is a raw image, whose
 * QEMU node shares write: see {@link ImageLocks}). The message is the lock error livemon reports unless the caller
 * finds, first, a failure QEMU would have reported after its open: a qcow2 header that is not one (the qcow2 driver
 * checks), or an existing backup target of another size ({@link #imageSize()}, checked by the backup job).
 */
public final class StricterThanQemu extends ImageException {
    private final long imageSize;

    StricterThanQemu(String message, long imageSize) {
        super(message);
        this.imageSize = imageSize;
    }

    /** The virtual size (bytes) QEMU's node for the file would have had; -1 when not known. */
    public long imageSize() {
        return imageSize;
    }

    /** The same refusal, knowing the size the opened image would have had. */
    StricterThanQemu withImageSize(long size) {
        return new StricterThanQemu(getMessage(), size);
    }
}
