package io.livemon.block;

import java.io.IOException;

/** How jobs name I/O errors: QEMU reports the errno's text (strerror), not the exception that carried it. */
final class IoErrors {
    static final String EIO = "Input/output error";
    static final String ENOSPC = "No space left on device";

    private IoErrors() {
    }

    static boolean isNoSpace(IOException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m != null && m.contains(ENOSPC)) {
                return true;
            }
        }
        return false;
    }

    /** The strerror text QEMU would report for this failure. */
    static String strerror(IOException e) {
        return isNoSpace(e) ? ENOSPC : EIO;
    }
}
