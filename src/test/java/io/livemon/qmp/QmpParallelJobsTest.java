package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Jobs on disjoint parts of one chain A<-B<-C<-D<-E, as QEMU 7.2's op blockers allow or refuse them (checked against
 * qemu-system-x86_64 7.2 with the same chain and node names).
 */
class QmpParallelJobsTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    private static final String RETURN = "{\"return\": {}}";

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QmpFixture.mkchain(dir, "64M");
        QemuTools.toRaw(dir, "file-E.img", "before.raw");
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT, QmpFixture.DRIVE_E);
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    private static String last(java.util.List<String> l) {
        return l.get(l.size() - 1);
    }

    /** QEMU checks top..base of a commit only: a stream below the base runs on; both finish, the data is kept. */
    @Test
    void commitAboveAStreamRunsInParallel() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(last(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-B\", "
                    + "\"job-id\": \"s\", \"speed\": 1}}"))).isEqualTo(RETURN);
            assertThat(last(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"job-id\": \"c\", \"top-node\": \"node-D\", \"base-node\": \"node-C\"}}"))).isEqualTo(RETURN);
            assertThat(String.join("\n", c.until("\"null\", \"id\": \"c\"")))
                    .contains("\"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"c\"");
            assertThat(last(c.exchange("{\"execute\": \"block-job-set-speed\", \"arguments\": {\"device\": \"s\", "
                    + "\"speed\": 0}}"))).isEqualTo(RETURN);
            assertThat(String.join("\n", c.until("\"null\", \"id\": \"s\"")))
                    .contains("\"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"s\"");
        }
        fx.close();
        fx = null;
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").ok()).isTrue();
        for (String f : new String[] {"B", "C", "E"}) {
            QemuTools.assertClean(dir, "file-" + f + ".img");
        }
        assertThat(QemuTools.qemuImg(dir, "info", "-U", "--backing-chain", "file-E.img").stdout())
                .contains("backing file: file-C.img").doesNotContain("file-D.img").doesNotContain("file-A.img");
    }

    /**
     * A stream whose base has another stream's filter above it meets the filter first (QEMU names the filter node);
     * a commit whose top..base holds a stream's node is refused the same way; the jobs already running go on.
     */
    @Test
    void overlappingJobsAreRefusedAsQemu() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(last(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-C\", "
                    + "\"base-node\": \"node-A\", \"job-id\": \"s\", \"speed\": 1}}"))).isEqualTo(RETURN);
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-E\", "
                    + "\"base-node\": \"node-C\", \"job-id\": \"s2\"}}")).singleElement().asString()
                    .matches("\\{\"error\": \\{\"class\": \"GenericError\", \"desc\": \"Node '#block\\d+' is busy: "
                            + "block device is in use by block job: stream\"}}");
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"job-id\": \"c\", \"top-node\": \"node-D\", \"base-node\": \"node-B\"}}")).singleElement()
                    .asString().matches("\\{\"error\": \\{\"class\": \"GenericError\", \"desc\": \"Node '#block\\d+' "
                            + "is busy: block device is in use by block job: stream\"}}");
            // the device's root held by a commit is no root node for a mirror (qmp_get_root_bs)
            assertThat(last(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"job-id\": \"c\", \"top-node\": \"node-E\", \"base-node\": \"node-D\", \"speed\": 1}}")))
                    .isEqualTo(RETURN);
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}").get(0)).contains("\"device\": \"s\"")
                    .contains("\"device\": \"c\"");
        }
    }

    /** While an intermediate commit holds the device's root, a mirror of it is refused: "Need a root block node". */
    @Test
    void mirrorOfARootACommitHoldsNeedsARootNode() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(last(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"job-id\": \"c\", \"top-node\": \"node-D\", \"base-node\": \"node-C\", \"speed\": 1}}")))
                    .isEqualTo(RETURN);
            assertThat(c.exchange("{\"execute\": \"drive-mirror\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"target\": \"m.qcow2\", \"format\": \"qcow2\", \"sync\": \"full\"}}"))
                    .containsExactly(generic("Need a root block node"));
        }
    }

    /**
     * iotests 030 test_stream_parallel in small: streams given {@code bottom} on disjoint parts of the chain run
     * together, even where one's base is under the other's copy-on-read filter; both finish, the data is kept and
     * the chain is E <- C <- A.
     */
    @Test
    void streamsWithBottomOnDisjointPartsRunTogether() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(last(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-C\", "
                    + "\"bottom\": \"node-B\", \"job-id\": \"s1\", \"speed\": 1024}}"))).isEqualTo(RETURN);
            assertThat(last(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-E\", "
                    + "\"bottom\": \"node-D\", \"job-id\": \"s2\", \"speed\": 1024}}"))).isEqualTo(RETURN);
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-E\", "
                    + "\"bottom\": \"node-D\", \"base-node\": \"node-A\"}}"))
                    .containsExactly(generic("'bottom' and 'base-node' cannot be specified at the same time"));
            for (String j : new String[] {"s2", "s1"}) {
                assertThat(last(c.exchange("{\"execute\": \"block-job-set-speed\", \"arguments\": {\"device\": \""
                        + j + "\", \"speed\": 0}}"))).isEqualTo(RETURN);
            }
            c.until("\"null\", \"id\": \"s");
            c.until("\"null\", \"id\": \"s");
        }
        fx.close();
        fx = null;
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").ok()).isTrue();
        String chain = QemuTools.qemuImg(dir, "info", "-U", "--backing-chain", "file-E.img").stdout();
        assertThat(chain).contains("backing file: file-C.img").contains("backing file: file-A.img")
                .doesNotContain("file-B.img").doesNotContain("file-D.img");
        for (String f : new String[] {"A", "C", "E"}) {
            QemuTools.assertClean(dir, "file-" + f + ".img");
        }
    }

    /**
     * iotests 030 test_overlapping_2 in small, and QEMU 7.2 by hand: an intermediate commit (top C, base B) blocks
     * the device's node, C and B but not D, the overlay of top; a stream into D meets C (named), or, with C as its
     * base, the link to the commit_top filter that can never be frozen.
     */
    @Test
    void aStreamAcrossAnIntermediateCommitIsRefusedAsQemu() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(last(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"job-id\": \"c\", \"top-node\": \"node-C\", \"base-node\": \"node-B\", \"speed\": 1}}")))
                    .isEqualTo(RETURN);
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-D\", "
                    + "\"base-node\": \"node-A\", \"job-id\": \"s\"}}"))
                    .containsExactly(generic("Node 'node-C' is busy: block device is in use by block job: commit"));
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-D\", "
                    + "\"base-node\": \"node-C\", \"job-id\": \"s\"}}")).singleElement().asString()
                    .matches("\\{\"error\": \\{\"class\": \"GenericError\", \"desc\": \"Cannot freeze 'backing' "
                            + "link to '#block\\d+'\"}}");
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"base-node\": \"node-D\", \"job-id\": \"s\"}}"))
                    .containsExactly(generic("Node 'virtio0' is busy: block device is in use by block job: commit"));
        }
    }
}
