package io.livemon.block;

import java.io.IOException;

/**
 * Sees every guest write to a node: before it lands (backup's copy-before-write) and after (mirror's dirty
 * tracking). Called on the writing thread; the range is the guest's, not cluster-aligned. afterWrite runs even when
 * the write failed (once beforeWrite returned), so a listener may count writes in flight.
 */
interface WriteListener {
    default void beforeWrite(long offset, long len) throws IOException {
    }

    default void afterWrite(long offset, long len) {
    }
}
