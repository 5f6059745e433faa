package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.image.QemuTools;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * blockdev-add and blockdev-del as QEMU 7.2 answers them (blockdev.c qmp_blockdev_add / qmp_blockdev_del): a node
 * added by name, refused twice, found by jobs and queries, closed only when nothing uses it.
 */
class QmpBlockdevAddTest {
    private static final String ADD_X = "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"qcow2\", "
            + "\"node-name\": \"node-X\", \"file\": {\"driver\": \"file\", \"filename\": \"x.qcow2\"}}}";

    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "x.qcow2", "16M");
        fx = QmpFixture.seed(dir, "16M");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void aNodeIsAddedOnceFoundByNameAndDeletedWhenUnused() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange(ADD_X)).containsExactly("{\"return\": {}}");
            assertThat(c.exchange(ADD_X)).containsExactly(generic("Duplicate nodes with node-name='node-X'"));
            assertThat(String.join("", c.exchange("{\"execute\": \"query-named-block-nodes\"}")))
                    .contains("\"node-name\": \"node-X\"");
            // a node of the drive's chain was not added by the monitor
            assertThat(c.exchange("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"node-E\"}}"))
                    .containsExactly(generic("Node node-E is in use"));
            assertThat(c.exchange("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"node-X\"}}"))
                    .containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"node-X\"}}"))
                    .containsExactly(generic("Failed to find node with node-name='node-X'"));
            // closed: the file may be opened for writing again
            assertThat(c.exchange(ADD_X)).containsExactly("{\"return\": {}}");
        }
    }

    @Test
    void anUnknownDriverIsRefusedAndNothingIsAdded() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(String.join("", c.exchange("{\"execute\": \"blockdev-add\", \"arguments\": "
                    + "{\"driver\": \"nosuch\", \"node-name\": \"n\"}}"))).contains("\"error\"");
            assertThat(c.exchange("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"n\"}}"))
                    .containsExactly(generic("Failed to find node with node-name='n'"));
        }
    }

    @Test
    void aNodeAddedReadOnlyCannotBeStreamedInto() throws Exception {
        // iotest 030 test_read_only: a read-only top over the drive's chain
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"qcow2\", "
                    + "\"node-name\": \"ro-top\", \"read-only\": true, \"file\": {\"driver\": \"file\", "
                    + "\"filename\": \"x.qcow2\", \"read-only\": true}, \"backing\": \"node-D\"}}"))
                    .containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"stream\", "
                    + "\"device\": \"ro-top\", \"base-node\": \"node-A\"}}"))
                    .containsExactly(generic("Block node is read-only"));
            assertThat(c.exchange("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"ro-top\"}}"))
                    .containsExactly("{\"return\": {}}");
        }
    }

    @Test
    void blockdevBackupCopiesIntoTheNamedNodeWhichStaysOpen() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange(ADD_X)).containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"blockdev-backup\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"target\": \"virtio0\", \"sync\": \"full\"}}"))
                    .containsExactly(generic("Source and target cannot be the same"));
            assertThat(c.exchange("{\"execute\": \"blockdev-backup\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"target\": \"nosuch\", \"sync\": \"full\"}}"))
                    .containsExactly(QmpProtocolTest.generic("Cannot find device='nosuch' nor node-name='nosuch'"));
            c.exchange("{\"execute\": \"blockdev-backup\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"target\": \"node-X\", \"sync\": \"full\"}}");
            assertThat(fx.graph.awaitNoJobs(60_000)).isTrue();
            // the target is still the user's node: blockdev-del closes it (the job's events come first)
            assertThat(c.exchange("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"node-X\"}}"))
                    .endsWith("{\"return\": {}}").anyMatch(l -> l.contains("BLOCK_JOB_COMPLETED"));
        }
        fx.close();
        fx = null;
        assertThat(QemuTools.compare(dir, "file-E.img", "x.qcow2").exitCode()).isZero();
        QemuTools.assertClean(dir, "x.qcow2");
    }

    @Test
    void aTransactionRunsItsBackupsAndAnAbortUndoesThem() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange(ADD_X)).containsExactly("{\"return\": {}}");
            // iotest 055 test_abort: the abort fails the transaction, and the backup it started is gone again
            assertThat(String.join("", c.exchange("{\"execute\": \"transaction\", \"arguments\": {\"actions\": ["
                    + "{\"type\": \"blockdev-backup\", \"data\": {\"device\": \"virtio0\", \"target\": \"node-X\", "
                    + "\"sync\": \"full\", \"speed\": 1024}}, {\"type\": \"abort\", \"data\": {}}]}}")))
                    .contains(generic("Transaction aborted using Abort action"));
            assertThat(fx.graph.awaitNoJobs(10_000)).isTrue();
            assertThat(String.join("", c.exchange("{\"execute\": \"transaction\", \"arguments\": {\"actions\": ["
                    + "{\"type\": \"nosuch\", \"data\": {}}]}}")))
                    .contains(generic("Parameter 'type' does not accept value 'nosuch'"));
            assertThat(String.join("", c.exchange("{\"execute\": \"transaction\", \"arguments\": {\"actions\": ["
                    + "{\"type\": \"blockdev-backup\", \"data\": {\"device\": \"virtio0\", \"target\": \"node-X\", "
                    + "\"sync\": \"full\"}}]}}"))).contains("{\"return\": {}}");
            assertThat(fx.graph.awaitNoJobs(60_000)).isTrue();
        }
        fx.close();
        fx = null;
        assertThat(QemuTools.compare(dir, "file-E.img", "x.qcow2").exitCode()).isZero();
    }
    /**
     * iotest 040 TestCommitWithOverriddenBacking: a backing given inline overrides the header's (QEMU 7.2.22, same
     * requests: the json: name, the node order, the refused base name, a commit into the override, and blockdev-del
     * closing the inline backing with its parent).
     */
    @Test
    void anInlineBackingOverridesTheHeadersAndGoesWithItsParent() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "base_a.img", "1M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "base_b.img", "1M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base_a.img", "-F", "qcow2", "top.img");
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"top\", "
                    + "\"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", \"filename\": \"top.img\"}, "
                    + "\"backing\": {\"node-name\": \"base\", \"driver\": \"qcow2\", \"file\": {\"driver\": "
                    + "\"file\", \"filename\": \"base_b.img\"}}}}")).containsExactly("{\"return\": {}}");
            String nodes = String.join("", c.exchange("{\"execute\": \"query-named-block-nodes\", \"arguments\": "
                    + "{\"flat\": true}}"));
            assertThat(nodes.indexOf("\"node-name\": \"base\"")).isLessThan(nodes.indexOf("\"node-name\": \"top\""));
            assertThat(nodes).contains("\"file\": \"json:{\\\"backing\\\": {\\\"driver\\\": \\\"qcow2\\\"");
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"job-id\": \"commit\", "
                    + "\"device\": \"top\", \"base\": \"base_a.img\"}}"))
                    .containsExactly(generic("Can't find 'base_a.img' in the backing chain"));
            assertThat(c.exchange("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"base\"}}"))
                    .containsExactly(generic("Node base is not owned by the monitor"));
            assertThat(c.exchange("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"top\"}}"))
                    .containsExactly("{\"return\": {}}");
            assertThat(String.join("", c.exchange("{\"execute\": \"query-named-block-nodes\"}")))
                    .doesNotContain("base_b.img");
        }
    }
    /** {@code "backing": null} opens the node without the backing file its header names (was refused as a type). */
    @Test
    void aNullBackingOpensTheNodeAlone() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "file-A.img", "-F", "qcow2", "over.qcow2");
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"t\", "
                    + "\"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", \"filename\": \"over.qcow2\"}, "
                    + "\"backing\": null}}")).containsExactly("{\"return\": {}}");
            @SuppressWarnings("unchecked")
            java.util.List<java.util.Map<String, Object>> nodes = (java.util.List<java.util.Map<String, Object>>)
                    ((java.util.Map<String, Object>) Json.parse(c.exchange(
                            "{\"execute\": \"query-named-block-nodes\"}").get(0))).get("return");
            java.util.Map<String, Object> t = nodes.stream().filter(n -> "t".equals(n.get("node-name"))).findFirst()
                    .orElseThrow();
            assertThat(t).doesNotContainKey("backing_file").containsEntry("backing_file_depth", 0L);
        }
    }
}
