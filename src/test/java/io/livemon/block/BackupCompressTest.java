package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * drive-backup's on-disk result against QEMU 7.2's for a chain with data (compressible text, incompressible random
 * bytes, a pattern), clusters of written zeroes, zero clusters ({@code write -z}), unallocated areas and a short last
 * cluster: the qemu-img map structure (compressed / data / zero / unallocated per cluster), qemu-img check, content,
 * and the file size. The expected structures were recorded with QEMU 7.2; when qemu-system-x86_64 is installed the
 * test also runs the same backup with it and compares directly.
 */
class BackupCompressTest {
    /** 64 MiB + 33 sectors: the last cluster is short. */
    private static final long SIZE = (64L << 20) + 512 * 33;

    @TempDir
    Path dir;
    BlockGraph graph;

    @BeforeEach
    void setUp() throws Exception {
        Random rnd = new Random(42);
        Files.write(dir.resolve("text.bin"), text(rnd, 3 << 20));
        byte[] noise = new byte[1 << 20];
        rnd.nextBytes(noise);
        Files.write(dir.resolve("rand.bin"), noise);
        byte[] text2 = text(rnd, 1 << 20);
        Files.write(dir.resolve("text2.bin"), text2);
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "base.qcow2", Long.toString(SIZE));
        QemuTools.qemuIo(dir, "base.qcow2", "write -s text.bin 0 1M", "write -P 0x55 1M 1M", "write -z 2M 1M",
                "write -s rand.bin 3M 1M", "write -P 0 4M 64k", "write -P 0x11 " + (SIZE - 4096) + " 4096");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2",
                Long.toString(SIZE));
        QemuTools.qemuIo(dir, "top.qcow2", "write -s text2.bin 8M 1M", "write -z 1536k 64k",
                "write -P 0x66 20M 100k");
    }

    @AfterEach
    void tearDown() {
        if (graph != null) {
            graph.close();
        }
    }

    /** Compressible bytes: words of a small vocabulary, like text on a guest disk. */
    private static byte[] text(Random rnd, int len) {
        String[] words = {"block", "job", "qcow2", "cluster", "the", "of", "backup", "mirror", "stream", "commit",
            "refcount", "table", "guest", "write", "read", "zero", "data", "image", "\n", "monitor"};
        StringBuilder sb = new StringBuilder();
        while (sb.length() < len) {
            sb.append(words[rnd.nextInt(words.length)]).append(rnd.nextInt(10) == 0 ? ". " : " ");
            if (rnd.nextInt(7) == 0) {
                sb.append(rnd.nextInt(100000));
            }
        }
        return sb.substring(0, len).getBytes(StandardCharsets.US_ASCII);
    }

    /**
     * The target's structure from {@code qemu-img map --output=json}: per run, C (compressed: data without an
     * offset), D (data), Z (zero, present), U (unallocated); lower case when the run comes from a backing file.
     * Adjacent runs of one kind are merged, so host offsets do not matter.
     */
    private String structure(String image) {
        String json = QemuTools.qemuImg(dir, "map", "-U", "--output=json", image).stdout();
        Pattern p = Pattern.compile("\"length\": (\\d+), \"depth\": (\\d+), \"present\": (\\w+), \"zero\": (\\w+), "
                + "\"data\": (\\w+)(, \"offset\": \\d+)?");
        List<String> kinds = new ArrayList<>();
        List<Long> lens = new ArrayList<>();
        Matcher m = p.matcher(json);
        while (m.find()) {
            String k = m.group(5).equals("true") ? (m.group(6) != null ? "D" : "C")
                    : m.group(3).equals("true") ? "Z" : "U";
            if (!m.group(2).equals("0")) {
                k = k.toLowerCase();
            }
            long len = Long.parseLong(m.group(1));
            int last = kinds.size() - 1;
            if (last >= 0 && kinds.get(last).equals(k)) {
                lens.set(last, lens.get(last) + len);
            } else {
                kinds.add(k);
                lens.add(len);
            }
        }
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < kinds.size(); i++) {
            sb.append(sb.length() == 0 ? "" : " ").append(kinds.get(i)).append(lens.get(i) >> 10);
        }
        return sb.toString();
    }

    /** Runs livemon's backup of top.qcow2 into {@code target} through the typed API and waits for it. */
    private void livemonBackup(String target, String sync, boolean compress) throws Exception {
        graph = new BlockGraph(dir);
        graph.addDrive(DriveOptions.parse("file=top.qcow2,if=none,id=virtio0"));
        BackupJob.start(graph, new BackupJob.Request(null, "virtio0", target, "qcow2", sync, false, 0, null, null,
                compress, OnErrorPolicy.REPORT, OnErrorPolicy.REPORT, true, true), line -> { });
        assertThat(graph.awaitNoJobs(60_000)).isTrue();
        graph.close();
        graph = null;
    }

    private static boolean qemuInstalled() {
        try {
            return QemuTools.run(Path.of("."), "qemu-system-x86_64", "--version").ok();
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** Runs the same backup with QEMU 7.2 over QMP on stdin/stdout; waits for BLOCK_JOB_COMPLETED. */
    private void qemuBackup(String target, String sync, boolean compress) throws Exception {
        Process p = new ProcessBuilder("qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none",
                "-qmp", "stdio", "-drive", "file=top.qcow2,if=none,id=virtio0").directory(dir.toFile())
                .redirectErrorStream(true).start();
        try (Writer w = new java.io.OutputStreamWriter(p.getOutputStream(), StandardCharsets.UTF_8);
             BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                     StandardCharsets.UTF_8))) {
            w.write("{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"drive-backup\", \"arguments\": "
                    + "{\"device\": \"virtio0\", \"target\": \"" + target + "\", \"format\": \"qcow2\", \"sync\": \""
                    + sync + "\", \"compress\": " + compress + "}}\n");
            w.flush();
            String line;
            while ((line = r.readLine()) != null && !line.contains("BLOCK_JOB_COMPLETED")) {
                assertThat(line).doesNotContain("\"error\"");
            }
            assertThat(line).as("QEMU's backup completed").isNotNull().doesNotContain("\"error\"");
            w.write("{\"execute\": \"quit\"}\n");
            w.flush();
        } finally {
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
        }
    }

    @ParameterizedTest(name = "sync={0} compress={1}")
    @CsvSource(delimiter = '|', value = {
        // recorded with QEMU 7.2.22 (qemu-img map of its backup target, see structure())
        "full | true  | C1536 Z64 C448 Z1024 D1024 Z4096 C1024 Z11264 C128 Z44928 C16 | 1943272",
        "full | false | D1536 Z64 D448 Z1024 D1024 Z4096 D1024 Z11264 D128 Z44928 D16 | 4653056",
        "top  | true  | d1536 Z64 d448 z1024 d1088 u4032 C1024 u11264 C128 u44928 d16 | 603980",
        "top  | false | d1536 Z64 d448 z1024 d1088 u4032 D1024 u11264 D128 u44928 d16 | 1507328",
    })
    void backupTargetIsLaidOutAsQemuLaysItOut(String sync, boolean compress, String expected, long qemuBytes)
            throws Exception {
        String target = "l-" + sync + "-" + compress + ".qcow2";
        livemonBackup(target, sync, compress);

        assertThat(structure(target)).isEqualTo(expected);
        QemuTools.assertClean(dir, target);
        assertThat(QemuTools.compare(dir, "top.qcow2", target).exitCode()).as("content").isZero();
        long bytes = Files.size(dir.resolve(target));
        assertThat((double) bytes).as("file size against QEMU's").isBetween(qemuBytes * 0.9, qemuBytes * 1.1);

        if (qemuInstalled()) {
            String q = "q-" + sync + "-" + compress + ".qcow2";
            qemuBackup(q, sync, compress);
            assertThat(structure(target)).isEqualTo(structure(q));
            long qb = Files.size(dir.resolve(q));
            assertThat((double) bytes).as("file size against QEMU's").isBetween(qb * 0.9, qb * 1.1);
        }
    }

    @Test
    void compressedBackupIsMuchSmallerThanAPlainOne() throws Exception {
        livemonBackup("plain.qcow2", "full", false);
        livemonBackup("small.qcow2", "full", true);
        assertThat(Files.size(dir.resolve("small.qcow2"))).isLessThan(Files.size(dir.resolve("plain.qcow2")) / 2);
        String check = QemuTools.check(dir, "small.qcow2").stdout();
        assertThat(check).contains("No errors were found on the image.").contains("compressed clusters");
        assertThat(QemuTools.compare(dir, "plain.qcow2", "small.qcow2").exitCode()).isZero();
    }
}
