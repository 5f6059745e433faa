package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The QMP forms of the creating commands refuse an image of the open chain, as QEMU 7.2 answers them (recorded from
 * its QMP): the error's desc carries no hint line, and the images keep every byte.
 */
class QmpTargetSafetyTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        fx = QmpFixture.seed(dir, "16M");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void snapshotMirrorAndBackupOntoImagesOfTheChainAreRefused() throws Exception {
        byte[] a = Files.readAllBytes(dir.resolve("file-A.img"));
        byte[] e = Files.readAllBytes(dir.resolve("file-E.img"));
        String lock = generic("Failed to get \\\"write\\\" lock");
        String[] commands = {
            "{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"device\": \"virtio0\", "
                + "\"snapshot-file\": \"file-A.img\"}}",
            "{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"device\": \"virtio0\", "
                + "\"snapshot-file\": \"file-A.img\", \"mode\": \"existing\"}}",
            "{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"device\": \"virtio0\", "
                + "\"snapshot-file\": \"./file-E.img\", \"format\": \"qcow2\"}}",
            "{\"execute\": \"drive-mirror\", \"arguments\": {\"device\": \"virtio0\", \"target\": \"file-A.img\", "
                + "\"sync\": \"full\"}}",
            "{\"execute\": \"drive-mirror\", \"arguments\": {\"device\": \"virtio0\", \"target\": \"file-A.img\", "
                + "\"sync\": \"full\", \"mode\": \"existing\"}}",
            "{\"execute\": \"drive-backup\", \"arguments\": {\"device\": \"virtio0\", \"target\": \"file-E.img\", "
                + "\"sync\": \"full\"}}",
        };
        try (QmpTestClient c = fx.negotiated()) {
            for (String cmd : commands) {
                List<String> got = c.exchange(cmd);
                assertThat(got).as(cmd).containsExactly(lock);
            }
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}")).containsExactly("{\"return\": []}");
        }
        assertThat(Files.readAllBytes(dir.resolve("file-A.img"))).isEqualTo(a);
        assertThat(Files.readAllBytes(dir.resolve("file-E.img"))).isEqualTo(e);
    }
}
