package io.livemon.cli;

import io.livemon.image.Image;
import io.livemon.image.Images;
import io.livemon.image.Qcow2CreateOptions;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The seed's chain {@code [A] <- [B] <- [C] <- [D] <- [E]}: five 64 MiB qcow2 images, each holding its own 1 MiB
 * pattern in its own region (A 0xaa at 0, B 0xbb at 1M, C 0xcc at 2M, D 0xdd at 3M, E 0xee at 4M), A also 0xa1 over
 * 8M..16M, and two writes that cover a lower layer's data (B 0xb1 at 8M, D 0xd1 at 1M+512k) so which layer wins
 * matters.
 */
public final class DemoChain {
    static final long SIZE = 64L << 20;
    static final String[] LAYERS = {"A", "B", "C", "D", "E"};

    private DemoChain() {
    }

    /** Creates the five images in {@code dir}; returns the top's file name ({@code file-E.img}). */
    public static String create(Path dir) throws IOException {
        String prev = null;
        for (String l : LAYERS) {
            String name = fileName(l);
            Qcow2CreateOptions o = prev == null ? Qcow2CreateOptions.defaults()
                    : Qcow2CreateOptions.withBacking(prev, "qcow2");
            Images.createQcow2(dir, name, SIZE, o);
            prev = name;
        }
        fill(dir, "A", 0, 1 << 20, 0xaa);
        fill(dir, "A", 8L << 20, 8 << 20, 0xa1);
        fill(dir, "B", 1L << 20, 1 << 20, 0xbb);
        fill(dir, "B", 8L << 20, 1 << 20, 0xb1);
        fill(dir, "C", 2L << 20, 1 << 20, 0xcc);
        fill(dir, "D", 3L << 20, 1 << 20, 0xdd);
        fill(dir, "D", (1L << 20) + (512 << 10), 512 << 10, 0xd1);
        fill(dir, "E", 4L << 20, 1 << 20, 0xee);
        return fileName("E");
    }

    static String fileName(String layer) {
        return "file-" + layer + ".img";
    }

    private static void fill(Path dir, String layer, long offset, int len, int pattern) throws IOException {
        byte[] buf = new byte[len];
        Arrays.fill(buf, (byte) pattern);
        try (Image img = Images.open(dir, fileName(layer), "qcow2", false)) {
            img.write(offset, buf, 0, len);
            img.flush();
        }
    }
}
