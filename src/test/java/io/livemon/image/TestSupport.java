package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;

/** Helpers shared by the image tests. */
final class TestSupport {
    private TestSupport() {
    }

    /** Reads the whole guest view of an image through livemon. */
    static byte[] readAll(Image img) throws IOException {
        byte[] b = new byte[(int) img.size()];
        int chunk = 3 << 20; // odd-sized chunks cross cluster and L2 boundaries
        for (int off = 0; off < b.length; off += chunk) {
            img.read(off, b, off, Math.min(chunk, b.length - off));
        }
        return b;
    }

    /** Asserts livemon's view of {@code file} (with its chain) equals qemu-img convert's raw output. */
    static void assertSameAsQemu(Path dir, String file) throws IOException {
        QemuTools.toRaw(dir, file, file + ".ref.raw");
        byte[] ref = Files.readAllBytes(dir.resolve(file + ".ref.raw"));
        Image img = Images.openChain(dir, file, null, true);
        try {
            byte[] got = readAll(img);
            assertThat(got.length).isEqualTo(ref.length);
            if (!Arrays.equals(got, ref)) {
                int i = Arrays.mismatch(got, ref);
                throw new AssertionError(file + ": first difference at guest offset " + i + " (livemon "
                        + got[i] + ", qemu " + ref[i] + ")");
            }
        } finally {
            Images.closeChain(img);
        }
    }

    /** Writes a model byte array as a raw file. */
    static void writeRaw(Path p, byte[] data) throws IOException {
        Files.write(p, data);
    }
}
