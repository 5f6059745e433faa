package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.image.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Transcript 15: query-block and query-named-block-nodes shapes, blockdev-snapshot-sync. */
class QmpQueriesTest {
    static final Path TRANSCRIPT = Path.of("..", "shared", "reference", "transcripts", "15-qmp-queries.txt");

    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "base.qcow2", "16M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT,
                "file=top.qcow2,if=none,id=virtio0,node-name=node-top,backing.node-name=node-base");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    /** The reply that follows {@code request} in the transcript. */
    static String captured(String request) throws Exception {
        List<String> lines = Files.readAllLines(TRANSCRIPT);
        for (int i = 0; i < lines.size() - 1; i++) {
            if (lines.get(i).equals("-> " + request)) {
                return lines.get(i + 1).substring(3);
            }
        }
        throw new AssertionError("not in transcript: " + request);
    }

    /** Generated node names differ per run; actual-size (allocated blocks) depends on the file system. */
    static String maskNodeNames(String s) {
        return s.replaceAll("#block\\d+", "#blockN").replaceAll("\"actual-size\": \\d+", "\"actual-size\": A");
    }

    @Test
    void queryBlockAndNamedNodesAsCaptured() throws Exception {
        Assumptions.assumeTrue(Files.exists(TRANSCRIPT), "shared transcripts present");
        try (QmpTestClient c = fx.negotiated()) {
            String qb = "{\"execute\": \"query-block\"}";
            assertThat(maskNodeNames(c.exchange(qb).get(0))).isEqualTo(maskNodeNames(captured(qb)));
            String qn = "{\"execute\": \"query-named-block-nodes\", \"arguments\": {\"flat\": true}}";
            assertThat(maskNodeNames(c.exchange(qn).get(0))).isEqualTo(maskNodeNames(captured(qn)));
            assertThat(c.exchange("{\"execute\": \"query-named-block-nodes\"}").get(0))
                    .contains("\"backing-image\": {");
        }
    }

    @Test
    void blockdevSnapshotSync() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"snapshot-file\": \"snap.qcow2\", \"snapshot-node-name\": \"node-snap\", \"format\": "
                    + "\"qcow2\"}}")).containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"node-name\": "
                    + "\"node-top\", \"snapshot-file\": \"snap2.qcow2\"}}"))
                    .containsExactly(generic("Node 'node-top' is busy: node is used as backing hd of 'node-snap'"));
            assertThat(c.exchange("{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"snapshot-file\": \"snap2.qcow2\", \"snapshot-node-name\": \"node-snap\"}}"))
                    .containsExactly(generic("New overlay node-name already in use"));
            assertThat(c.exchange("{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"snapshot-file\": \"snap3.qcow2\", \"mode\": \"existing\"}}"))
                    .containsExactly(generic("Could not open 'snap3.qcow2': No such file or directory"));
            assertThat(c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"info block\"}}").get(0)).startsWith("{\"return\": \"virtio0 (node-snap): snap.qcow2 (qcow2)");
        }
        fx.close();
        assertThat(QemuTools.qemuImg(dir, "info", "snap.qcow2").stdout()).contains("backing file: top.qcow2");
        QemuTools.assertClean(dir, "snap.qcow2");
    }
}
