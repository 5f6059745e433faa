package io.livemon.qmp;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import io.livemon.monitor.Interpreter;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * drive-backup {@code "compress": true} and HMP {@code drive_backup -c} on the seed chain, against what QEMU 7.2.22
 * did with the same chain and commands (recorded): the map of the target, its size, its health, and the errors.
 */
class QmpBackupCompressTest {
    /** qemu-img map of QEMU's target: E's chain compressed (0-5M, 8M-16M), zero clusters everywhere else. */
    private static final String QEMU_MAP = "[{ \"start\": 0, \"length\": 5242880, \"depth\": 0, \"present\": true, "
            + "\"zero\": false, \"data\": true},\n"
            + "{ \"start\": 5242880, \"length\": 3145728, \"depth\": 0, \"present\": true, \"zero\": true, "
            + "\"data\": false},\n"
            + "{ \"start\": 8388608, \"length\": 8388608, \"depth\": 0, \"present\": true, \"zero\": false, "
            + "\"data\": true},\n"
            + "{ \"start\": 16777216, \"length\": 50331648, \"depth\": 0, \"present\": true, \"zero\": true, "
            + "\"data\": false}]\n";
    /** The size of QEMU's compressed target file. */
    private static final long QEMU_BYTES = 344112;

    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        fx = QmpFixture.seed(dir);
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    private String hmp(String line) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(b, true, StandardCharsets.UTF_8);
        Interpreter.execute(fx.hmp.withOutput(ps, ps), line);
        return b.toString(StandardCharsets.UTF_8);
    }

    private void assertLikeQemus(String target) throws Exception {
        assertThat(QemuTools.qemuImg(dir, "map", "-U", "--output=json", target).stdout()).isEqualTo(QEMU_MAP);
        assertThat(QemuTools.compare(dir, "file-E.img", target).exitCode()).isZero();
        assertThat(QemuTools.check(dir, target).stdout()).contains("No errors were found on the image.");
        assertThat((double) Files.size(dir.resolve(target))).isBetween(QEMU_BYTES * 0.9, QEMU_BYTES * 1.1);
    }

    @Test
    void qmpAndHmpCompressedBackupsAreLaidOutAsQemus() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"drive-backup\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"target\": \"c.qcow2\", \"sync\": \"full\", \"format\": \"qcow2\", \"compress\": true}}"))
                    .contains("{\"return\": {}}");
            List<String> end = c.until("\"null\"");
            assertThat(end).contains("{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": "
                    + "\"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"virtio0\", \"len\": 67108864, \"offset\": "
                    + "67108864, \"speed\": 0, \"type\": \"backup\"}}");
            // livemon announces "null" a moment before it drops the job's blockers (see the report of this change)
            assertThat(fx.graph.awaitNoJobs(10_000)).isTrue();
            assertThat(c.exchange("{\"execute\": \"drive-backup\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"target\": \"r.raw\", \"sync\": \"full\", \"format\": \"raw\", \"compress\": true}}"))
                    .contains("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Compression is not supported "
                            + "for this drive \"}}");
        }
        hmp("drive_backup -f -c virtio0 h.qcow2 qcow2");
        assertThat(fx.graph.awaitNoJobs(30_000)).isTrue();
        fx.close();
        fx = null;
        assertLikeQemus("c.qcow2");
        assertLikeQemus("h.qcow2");
    }

    @Test
    void compressedBackupIntoAllocatedClustersFailsAsQemusDoes() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "old.qcow2", "64M");
        QemuTools.qemuIo(dir, "old.qcow2", "write -P 7 0 128k");
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange("{\"execute\": \"drive-backup\", \"arguments\": {\"device\": \"virtio0\", \"target\": "
                    + "\"old.qcow2\", \"mode\": \"existing\", \"sync\": \"full\", \"format\": \"qcow2\", "
                    + "\"compress\": true}}");
            List<String> end = c.until("\"null\"");
            assertThat(end).contains("{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": "
                    + "\"BLOCK_JOB_ERROR\", \"data\": {\"device\": \"virtio0\", \"operation\": \"write\", "
                    + "\"action\": \"report\"}}");
            assertThat(end).anyMatch(l -> l.contains("\"BLOCK_JOB_COMPLETED\"")
                    && l.contains("\"error\": \"Input/output error\""));
        }
        fx.close();
        fx = null;
        QemuTools.assertClean(dir, "old.qcow2");
        QemuTools.qemuIo(dir, "old.qcow2", "read -P 7 0 128k").orThrow(); // compression never overwrites
        // QEMU's block-copy had the next 63 one-cluster tasks in flight when cluster 0 failed: they land (fuzz 8071)
        QemuTools.qemuIo(dir, "old.qcow2", "read -P 0xaa 128k 896k", "read -P 0xbb 1M 1M", "read -P 0xcc 2M 1M",
                "read -P 0xdd 3M 1M").orThrow();
    }
}
