package io.livemon.block;

import io.livemon.image.Errno;
import java.io.IOException;

/**
 * How jobs name I/O errors: QEMU reports the errno's text (strerror), not the exception that carried it. The errno
 * is decided once, by {@link Errno#of}.
 */
final class IoErrors {
    private IoErrors() {
    }

    static boolean isNoSpace(IOException e) {
        return Errno.of(e) == Errno.ENOSPC;
    }

    /** The strerror text QEMU would report for this failure. */
    static String strerror(IOException e) {
        return Errno.of(e).strerror;
    }
}
