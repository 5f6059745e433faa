package io.livemon.cli;

import java.io.PrintStream;

/**
 * QEMU's help probes, answered truthfully for what livemon has: {@code -machine help} (one machine, {@code none}, no
 * default), {@code -device help} (the storage devices a drive can be attached to, {@link GuestDevices}) and
 * {@code -drive format=help} (the block drivers livemon implements). QEMU's iotests run these before any test and
 * skip a test whose device or format is not listed. Output lines as QEMU 7.2 prints them.
 */
final class Probes {
    /** The block drivers livemon opens: formats, the file protocol and blkdebug (-blockdev). */
    static final String FORMATS = "blkdebug file qcow2 raw";

    private Probes() {
    }

    /** The exit status when the options ask for a help probe (after printing the answer), else null. */
    static Integer answer(Main o, PrintStream out) {
        if (isHelp(o.machine)) {
            out.println("Supported machines are:");
            out.println(String.format("%-20s %s", "none", "empty machine"));
            return 0;
        }
        for (String d : o.devices) {
            if (isHelp(d)) {
                out.println("Storage devices:");
                for (String line : GuestDevices.helpLines()) {
                    out.println(line);
                }
                return 0;
            }
        }
        for (String d : o.drives) {
            if (d.equals("format=help") || d.equals("format=?")) {
                out.println("Supported formats: " + FORMATS);
                out.println("Supported formats (read-only): " + FORMATS);
                return 0;
            }
        }
        return null;
    }

    private static boolean isHelp(String v) {
        return v != null && (v.equals("help") || v.equals("?"));
    }
}
