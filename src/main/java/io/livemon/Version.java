package io.livemon;

/** The version livemon reports: the QEMU release whose behaviour it reproduces, and its own. */
public final class Version {
    /** The QEMU version livemon's monitor behaves as. */
    public static final String QEMU_VERSION = "7.2.22";
    public static final int QEMU_MAJOR = 7;
    public static final int QEMU_MINOR = 2;
    public static final int QEMU_MICRO = 22;
    /** livemon's own version. */
    public static final String LIVEMON_VERSION = "0.1.0";
    /** QEMU's "package" string: where this build comes from. */
    public static final String PACKAGE = " (livemon " + LIVEMON_VERSION + ")";

    private Version() {
    }
}
