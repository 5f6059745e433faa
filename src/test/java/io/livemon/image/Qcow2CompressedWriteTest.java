package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compressed-cluster writes (Qcow2Image.writeCompressed) read back by QEMU's own tools: content (qemu-img compare
 * against a raw model), layout (qemu-img map) and refcounts (qemu-img check), including compressed data that
 * straddles host clusters, overwrites and discards of compressed clusters, and a reopen.
 */
class Qcow2CompressedWriteTest {
    private static final int CS = 64 << 10;

    @TempDir
    Path dir;

    /** A cluster whose deflated size is roughly {@code fill} of the cluster: a mix of random and repeated bytes. */
    private static byte[] cluster(Random rnd, double fill) {
        byte[] b = new byte[CS];
        for (int i = 0; i < CS; i++) {
            b[i] = rnd.nextDouble() < fill ? (byte) rnd.nextInt(256) : (byte) 'x';
        }
        return b;
    }

    /** Runs of qemu-img map: "C" compressed (data without an offset), "D" data, "Z"/"U" zero or unallocated. */
    private String kinds(String file) {
        String json = QemuTools.qemuImg(dir, "map", "-U", "--output=json", file).stdout();
        Matcher m = Pattern.compile("\"length\": (\\d+),[^}]*\"data\": (\\w+)(, \"offset\")?").matcher(json);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            String k = m.group(2).equals("true") ? (m.group(3) != null ? "D" : "C") : "Z";
            for (long i = 0; i < Long.parseLong(m.group(1)) / CS; i++) {
                sb.append(k);
            }
        }
        return sb.toString();
    }

    @Test
    void compressedClustersArePackedAndReadByQemu() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "c.qcow2", "16M");
        Random rnd = new Random(5);
        byte[] model = new byte[16 << 20];
        try (Image img = Images.open(dir, "c.qcow2", "qcow2", false)) {
            assertThat(img.supportsCompressedWrites()).isTrue();
            // repeats further apart than QEMU's 4 KiB compression window: an 8 KiB random block, eight times
            byte[] block = new byte[8 << 10];
            rnd.nextBytes(block);
            for (int i = 0; i < 8; i++) {
                System.arraycopy(block, 0, model, i * block.length, block.length);
            }
            // clusters that compress to 10..60% so that compressed data straddle host clusters
            for (int c = 1; c < 100; c++) {
                System.arraycopy(cluster(rnd, 0.1 + 0.5 * rnd.nextDouble()), 0, model, c * CS, CS);
            }
            // incompressible: written as a normal cluster
            byte[] noise = new byte[CS];
            rnd.nextBytes(noise);
            System.arraycopy(noise, 0, model, 100 * CS, CS);
            img.writeCompressed(0, model, 0, 101 * CS);
            // a short last cluster is padded with zeroes, as QEMU does
            byte[] tail = cluster(rnd, 0.3);
            System.arraycopy(tail, 0, model, model.length - CS, CS);
            img.writeCompressed(model.length - CS, model, model.length - CS, CS);
            byte[] back = new byte[101 * CS];
            img.read(0, back, 0, back.length);
            assertThat(back).isEqualTo(java.util.Arrays.copyOf(model, back.length));
        }
        TestSupport.writeRaw(dir.resolve("model.raw"), model);
        assertThat(QemuTools.compare(dir, "model.raw", "c.qcow2").exitCode()).as("content").isZero();
        QemuTools.assertClean(dir, "c.qcow2");
        String k = kinds("c.qcow2");
        assertThat(k.substring(0, 101)).isEqualTo("C".repeat(100) + "D");
        assertThat(k).endsWith("C");
        // packed byte-granular: 100 compressed clusters of 10..60% (plus deflate overhead) share host clusters
        // instead of taking one each
        assertThat(Files.size(dir.resolve("c.qcow2"))).isLessThan(80L * CS);

        // overwrite, zero and discard some compressed clusters; reopen and add more compressed clusters
        try (Image img = Images.open(dir, "c.qcow2", "qcow2", false)) {
            byte[] data = new byte[CS / 2];
            java.util.Arrays.fill(data, (byte) 0x5a);
            img.write(3L * CS + 100, data, 0, data.length);
            System.arraycopy(data, 0, model, 3 * CS + 100, data.length);
            img.writeZeroes(10L * CS, 2L * CS);
            java.util.Arrays.fill(model, 10 * CS, 12 * CS, (byte) 0);
            img.discard(20L * CS, 5L * CS);
            java.util.Arrays.fill(model, 20 * CS, 25 * CS, (byte) 0);
            for (int c = 150; c < 160; c++) {
                System.arraycopy(cluster(rnd, 0.4), 0, model, c * CS, CS);
            }
            img.writeCompressed(150L * CS, model, 150 * CS, 10 * CS);
        }
        TestSupport.writeRaw(dir.resolve("model.raw"), model);
        assertThat(QemuTools.compare(dir, "model.raw", "c.qcow2").exitCode()).as("content").isZero();
        QemuTools.assertClean(dir, "c.qcow2");
        assertThat(kinds("c.qcow2").substring(150, 160)).isEqualTo("C".repeat(10));
    }

    @Test
    void compressionNeverOverwritesAndNeedsWholeClusters() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "c.qcow2", "4M");
        QemuTools.qemuIo(dir, "c.qcow2", "write -P 1 0 64k", "write -z 64k 64k");
        byte[] buf = new byte[CS];
        java.util.Arrays.fill(buf, (byte) 2);
        try (Image img = Images.open(dir, "c.qcow2", "qcow2", false)) {
            assertThatThrownBy(() -> img.writeCompressed(0, buf, 0, CS)).hasMessage("Input/output error");
            assertThatThrownBy(() -> img.writeCompressed(512, buf, 0, CS)).hasMessage("Invalid argument");
            assertThatThrownBy(() -> img.writeCompressed(2L * CS, buf, 0, 4096)).hasMessage("Invalid argument");
            img.writeCompressed(CS, buf, 0, CS); // a zero cluster holds no data: QEMU compresses over it
        }
        QemuTools.qemuIo(dir, "c.qcow2", "read -P 1 0 64k", "read -P 2 64k 64k").orThrow();
        QemuTools.assertClean(dir, "c.qcow2");
        assertThat(kinds("c.qcow2")).startsWith("DC");

        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "r.img", "1M");
        try (Image raw = Images.open(dir, "r.img", "raw", false)) {
            assertThat(raw.supportsCompressedWrites()).isFalse();
            assertThatThrownBy(() -> raw.writeCompressed(0, buf, 0, CS)).hasMessage("Operation not supported");
        }
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({
        "cluster_size=512", "cluster_size=4k", "cluster_size=2M", "refcount_bits=1", "refcount_bits=64",
        "compat=0.10", "lazy_refcounts=on",
    })
    void everyQcow2LayoutTakesCompressedClusters(String option) throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-o", option, "o.qcow2", "4M");
        int cs;
        try (Image img = Images.open(dir, "o.qcow2", "qcow2", false)) {
            cs = (int) img.info().clusterSize();
        }
        Random rnd = new Random(option.hashCode());
        byte[] model = new byte[4 << 20];
        for (int i = 0; i < model.length; i++) {
            model[i] = rnd.nextInt(4) == 0 ? (byte) rnd.nextInt(256) : (byte) 'x';
        }
        try (Image img = Images.open(dir, "o.qcow2", "qcow2", false)) {
            img.writeCompressed(0, model, 0, model.length / 2); // one request, split into clusters
            for (int off = model.length / 2; off < model.length; off += cs) {
                img.writeCompressed(off, model, off, cs);
            }
        }
        TestSupport.writeRaw(dir.resolve("model.raw"), model);
        assertThat(QemuTools.compare(dir, "model.raw", "o.qcow2").exitCode()).as("content").isZero();
        QemuTools.assertClean(dir, "o.qcow2");
        String check = QemuTools.check(dir, "o.qcow2").stdout();
        assertThat(check).contains("100.00% compressed clusters");
        // QEMU's own compressed writer (qemu-img convert -c) on the same content and layout: a file of about the
        // same size (2 MiB clusters are mostly metadata; refcount_bits=1 allows one compressed cluster per host one)
        QemuTools.qemuImg(dir, "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", option, "model.raw", "q.qcow2");
        long qemuBytes = Files.size(dir.resolve("q.qcow2"));
        assertThat((double) Files.size(dir.resolve("o.qcow2"))).isBetween(qemuBytes * 0.9, qemuBytes * 1.1);
    }
}
