package io.livemon.image;

/** The allocation state of one run of bytes in a single image layer. */
public record BlockStatus(Kind kind, long length) {
    public enum Kind {
        /** Data stored in this layer. */
        DATA,
        /** This layer says "reads as zeroes" (a zero cluster), hiding the backing file. */
        ZERO,
        /** Not allocated in this layer: the backing file (or zeroes) shows through. */
        UNALLOCATED
    }

    public boolean allocated() {
        return kind != Kind.UNALLOCATED;
    }
}
