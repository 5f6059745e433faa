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
    /**
     * Data safety (newcomer trial): a node of a backing chain, the source's own backing above all, is never a mirror
     * target; QEMU's op blocker refuses it with this text and the file keeps every byte.
     */
    @Test
    void aBackingNodeIsNeverAMirrorTarget() throws Exception {
        byte[] before = java.nio.file.Files.readAllBytes(dir.resolve("file-D.img"));
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"job-id\": \"j\", "
                    + "\"device\": \"virtio0\", \"target\": \"node-D\", \"sync\": \"full\"}}"))
                    .containsExactly(generic("Node 'node-D' is busy: node is used as backing hd of 'node-E'"));
            assertThat(c.exchange("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"job-id\": \"j\", "
                    + "\"device\": \"virtio0\", \"target\": \"node-A\", \"sync\": \"top\"}}"))
                    .containsExactly(generic("Node 'node-A' is busy: node is used as backing hd of 'node-B'"));
            assertThat(c.exchange("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"job-id\": \"j\", "
                    + "\"device\": \"virtio0\", \"target\": \"node-E\", \"sync\": \"full\"}}"))
                    .containsExactly(generic("Can't mirror node into itself"));
        }
        fx.close();
        fx = null;
        assertThat(java.nio.file.Files.readAllBytes(dir.resolve("file-D.img"))).isEqualTo(before);
    }

    /** An empty drive named where a medium is needed: QEMU's "has no medium" (newcomer trial). */
    @Test
    void anEmptyDriveHasNoMedium() throws Exception {
        fx.graph.addDrive(io.livemon.block.DriveOptions.parse("if=none,id=cd0"));
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"device\": \"cd0\", "
                    + "\"snapshot-file\": \"s.qcow2\"}}")).containsExactly(generic("Device 'cd0' has no medium"));
            assertThat(c.exchange("{\"execute\": \"block_resize\", \"arguments\": {\"device\": \"cd0\", "
                    + "\"size\": 1048576}}")).containsExactly(generic("Device 'cd0' has no medium"));
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"cd0\"}}"))
                    .containsExactly(generic("Device 'cd0' has no medium"));
        }
        assertThat(dir.resolve("s.qcow2")).doesNotExist();
    }

    /** null-co nodes as QEMU describes them; a negative size (which aborts QEMU 7.2) is refused. */
    @Test
    void nullCoNodesAreDescribedByTheirSize() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", "
                    + "\"node-name\": \"n4\", \"size\": 1000}}")).containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", "
                    + "\"node-name\": \"n5\", \"size\": -1}}"))
                    .containsExactly(generic("Parameter 'size' expects a non-negative value"));
            String nodes = String.join("", c.exchange("{\"execute\": \"query-named-block-nodes\"}"));
            assertThat(nodes).contains("\"virtual-size\": 1000").contains("\"format\": \"null-co\"")
                    .contains("json:{\\\"driver\\\": \\\"null-co\\\", \\\"size\\\": 1000}");
        }
    }
}
