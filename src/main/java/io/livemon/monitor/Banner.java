package io.livemon.monitor;

import io.livemon.Version;

/** The first line the monitor prints. */
public final class Banner {
    private Banner() {
    }

    public static String text() {
        return "livemon " + Version.LIVEMON_VERSION + " (QEMU " + Version.QEMU_VERSION
                + " monitor) - type 'help' for more information";
    }
}
