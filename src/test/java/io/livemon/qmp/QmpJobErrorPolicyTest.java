package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A backup's two error policies and the nodes a finished job still holds, checked against what QEMU 7.2 does
 * (iotests 056 {@code test_dismiss_premature}/{@code test_dismiss_erroneous}/{@code test_dismiss_collision}, and
 * QEMU 7.2 driven by hand with the same commands): a failed target write follows {@code on-target-error}, not
 * {@code on-source-error}; a client that reads BLOCK_JOB_ERROR with action {@code stop} can resume at once; a
 * concluded backup no longer makes its device busy (only its id stays taken), a concluded stream does.
 */
class QmpJobErrorPolicyTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        fx = QmpFixture.seed(dir, "16M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "dest.qcow2", "16M");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    /** blockdev-add of dest.qcow2 through blkdebug that fails the first write of the file with EIO. */
    private static final String TARGET_FAILING_ONCE = "{\"execute\": \"blockdev-add\", \"arguments\": "
            + "{\"node-name\": \"target0\", \"driver\": \"qcow2\", \"file\": {\"driver\": \"blkdebug\", \"image\": "
            + "{\"driver\": \"file\", \"filename\": \"dest.qcow2\"}, \"inject-error\": [{\"event\": \"write_aio\", "
            + "\"errno\": 5, \"immediately\": false, \"once\": true}]}}}";

    @Test
    void aTargetWriteErrorFollowsOnTargetErrorAndAResumeRightAfterTheEventIsAccepted() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange(TARGET_FAILING_ONCE)).containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"blockdev-backup\", \"arguments\": {\"job-id\": \"j\", "
                    + "\"device\": \"virtio0\", \"target\": \"target0\", \"sync\": \"full\", "
                    + "\"on-target-error\": \"stop\", \"auto-dismiss\": false}}")).endsWith("{\"return\": {}}");
            List<String> error = c.until("BLOCK_JOB_ERROR");
            assertThat(error.get(error.size() - 1)).isEqualTo("{\"timestamp\": {\"seconds\": S, \"microseconds\": "
                    + "U}, \"event\": \"BLOCK_JOB_ERROR\", \"data\": {\"device\": \"j\", \"operation\": \"write\", "
                    + "\"action\": \"stop\"}}");
            // sent the moment the event is read: the job is already paused (no "Can't resume a job that was not
            // paused"), as in QEMU, where the event and the pause are one main-loop step
            assertThat(c.exchange("{\"execute\": \"block-job-resume\", \"arguments\": {\"device\": \"j\"}}"))
                    .endsWith("{\"return\": {}}");
            List<String> end = c.until("BLOCK_JOB_COMPLETED");
            assertThat(end.get(end.size() - 1)).contains("\"offset\": 16777216").doesNotContain("\"error\"");
            assertThat(c.exchange("{\"execute\": \"job-dismiss\", \"arguments\": {\"id\": \"j\"}}"))
                    .endsWith("{\"return\": {}}");
        }
        fx.close();
        fx = null;
        assertThat(QemuTools.compare(dir, "file-E.img", "dest.qcow2").ok()).isTrue();
    }

    @Test
    void onSourceErrorDoesNotApplyToTargetWrites() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange(TARGET_FAILING_ONCE)).containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"blockdev-backup\", \"arguments\": {\"job-id\": \"j\", "
                    + "\"device\": \"virtio0\", \"target\": \"target0\", \"sync\": \"full\", "
                    + "\"on-source-error\": \"stop\"}}")).endsWith("{\"return\": {}}");
            List<String> ev = c.until("BLOCK_JOB_COMPLETED");
            assertThat(ev).contains("{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": "
                    + "\"BLOCK_JOB_ERROR\", \"data\": {\"device\": \"j\", \"operation\": \"write\", \"action\": "
                    + "\"report\"}}");
            assertThat(ev.get(ev.size() - 1)).contains("\"error\": \"Input/output error\"");
        }
    }

    @Test
    void aConcludedBackupKeepsItsIdButNotItsDevice() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"drive-backup\", \"arguments\": {\"job-id\": \"b1\", "
                    + "\"device\": \"virtio0\", \"target\": \"bk1.qcow2\", \"sync\": \"full\", "
                    + "\"auto-dismiss\": false}}")).endsWith("{\"return\": {}}");
            c.until("\"concluded\"");
            assertThat(c.exchange("{\"execute\": \"drive-backup\", \"arguments\": {\"job-id\": \"b1\", "
                    + "\"device\": \"virtio0\", \"target\": \"bk2.qcow2\", \"sync\": \"full\"}}"))
                    .containsExactly(generic("Job ID 'b1' already in use"));
            assertThat(c.exchange("{\"execute\": \"drive-backup\", \"arguments\": {\"job-id\": \"b2\", "
                    + "\"device\": \"virtio0\", \"target\": \"bk3.qcow2\", \"sync\": \"full\"}}"))
                    .endsWith("{\"return\": {}}");
            List<String> second = c.until("BLOCK_JOB_COMPLETED");
            assertThat(second.get(second.size() - 1)).contains("\"device\": \"b2\"").doesNotContain("\"error\"");
        }
    }

    @Test
    void aConcludedStreamStillHoldsItsDevice() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"s1\", "
                    + "\"device\": \"virtio0\", \"auto-dismiss\": false}}")).endsWith("{\"return\": {}}");
            c.until("\"concluded\"");
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"s2\", "
                    + "\"device\": \"virtio0\"}}"))
                    .containsExactly(generic("Node 'virtio0' is busy: block device is in use by block job: stream"));
            assertThat(c.exchange("{\"execute\": \"job-dismiss\", \"arguments\": {\"id\": \"s1\"}}"))
                    .endsWith("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"s2\", "
                    + "\"device\": \"virtio0\"}}")).endsWith("{\"return\": {}}");
        }
    }

    /**
     * iotests 041 TestReadErrors.test_large_cluster: a sync=top mirror into an existing target with 128 KiB clusters
     * and a backing file copies whole target clusters, so the half of the cluster the source's top lacks is read
     * through the source's chain, where blkdebug fails it once (on-source-error ignore: the job retries and ends
     * with the target equal to the source).
     */
    @Test
    void aMirrorIntoLargerTargetClustersReadsWholeTargetClusters() throws Exception {
        fx.close();
        fx = null;
        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "backing.raw", "2M");
        QemuTools.qemuIoFmt(dir, "raw", "backing.raw", "write -P 0x5a 0 2M");
        java.nio.file.Files.writeString(dir.resolve("dbg.conf"), "[inject-error]\nstate = \"1\"\nevent = "
                + "\"read_aio\"\nerrno = \"5\"\nimmediately = \"off\"\nonce = \"on\"\nsector = \"2048\"\n"
                + "[set-state]\nstate = \"1\"\nevent = \"read_aio\"\nnew_state = \"2\"\n"
                + "[set-state]\nstate = \"2\"\nevent = \"read_aio\"\nnew_state = \"1\"\n");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-o", "backing_file=blkdebug:dbg.conf:backing.raw,"
                + "backing_fmt=raw", "top.qcow2");
        QemuTools.qemuIo(dir, "top.qcow2", "write -P 0x11 1114112 512");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-o", "cluster_size=131072", "-b", "backing.raw",
                "-F", "raw", "target.qcow2");
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT, "file=top.qcow2,if=none,id=drive0");
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"drive-mirror\", \"arguments\": {\"device\": \"drive0\", "
                    + "\"target\": \"target.qcow2\", \"sync\": \"top\", \"mode\": \"existing\", "
                    + "\"on-source-error\": \"ignore\"}}")).endsWith("{\"return\": {}}");
            List<String> first = c.until("BLOCK_JOB_");
            assertThat(first.get(first.size() - 1)).isEqualTo("{\"timestamp\": {\"seconds\": S, \"microseconds\": "
                    + "U}, \"event\": \"BLOCK_JOB_ERROR\", \"data\": {\"device\": \"drive0\", \"operation\": "
                    + "\"read\", \"action\": \"ignore\"}}");
            c.until("BLOCK_JOB_READY");
            assertThat(c.exchange("{\"execute\": \"block-job-complete\", \"arguments\": {\"device\": "
                    + "\"drive0\"}}")).endsWith("{\"return\": {}}");
            c.until("BLOCK_JOB_COMPLETED");
        }
        fx.close();
        fx = null;
        QemuTools.qemuImg(dir, "rebase", "-q", "-f", "qcow2", "-u", "-b", "backing.raw", "-F", "raw", "top.qcow2");
        assertThat(QemuTools.compare(dir, "top.qcow2", "target.qcow2").ok()).isTrue();
        QemuTools.assertClean(dir, "target.qcow2");
    }
}
