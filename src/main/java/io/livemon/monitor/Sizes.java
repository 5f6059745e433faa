package io.livemon.monitor;

import java.util.Locale;

/** QEMU's human-readable sizes ({@code 64 MiB}, {@code 1.5 GiB}, {@code 512 B}), as its size_to_str. */
final class Sizes {
    private static final String[] UNITS = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

    private Sizes() {
    }

    /**
     * Three significant digits; the unit switches up once the integer part would reach 1000 (so 1000 bytes is
     * {@code 0.977 KiB}).
     */
    static String human(long bytes) {
        int i = bytes <= 0 ? 0 : Math.getExponent(bytes / (1000.0 / 1024.0)) / 10;
        i = Math.min(i, UNITS.length - 1);
        double v = bytes / Math.pow(1024, i);
        String s = String.format(Locale.ROOT, "%.3g", v);
        if (s.contains(".")) {
            s = s.replaceAll("0+$", "").replaceAll("\\.$", "");
        }
        return s + " " + UNITS[i];
    }
}
