package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
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

    /**
     * query-blockstats as QEMU 7.2 answered on the same images (checked by hand: a 64 KiB write at 0 into a fresh
     * 64 KiB-cluster qcow2 ends at guest offset 65536 and at host offset 393216, after header, refcount table and
     * block, L1 and L2 table); per drive with the backing chain, per node without it and in opening order; an empty
     * drive has no node.
     */
    @Test
    @SuppressWarnings("unchecked")
    void blockstatsCountTheHighestWrite() throws Exception {
        fx.graph.addDrive(io.livemon.block.DriveOptions.parse("if=none,id=empty0"));
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"qemu-io virtio0 \\\"write 0 64k\\\"\"}}");
            Map<String, Object> r = (Map<String, Object>) Json.parse(
                    c.exchange("{\"execute\": \"query-blockstats\"}").get(0));
            List<Map<String, Object>> drives = (List<Map<String, Object>>) r.get("return");
            assertThat(drives).hasSize(2);
            Map<String, Object> top = drives.get(0);
            assertThat(top.get("device")).isEqualTo("virtio0");
            assertThat(top.get("node-name")).isEqualTo("node-top");
            assertThat(stat(top, "wr_highest_offset")).isEqualTo(65536L);
            assertThat(stat(top, "account_invalid")).isEqualTo(true);
            Map<String, Object> file = (Map<String, Object>) top.get("parent");
            assertThat(stat(file, "wr_highest_offset")).isEqualTo(393216L);
            assertThat(((Map<String, Object>) file.get("driver-specific")).get("driver")).isEqualTo("file");
            Map<String, Object> base = (Map<String, Object>) top.get("backing");
            assertThat(base.get("node-name")).isEqualTo("node-base");
            assertThat(stat(base, "wr_highest_offset")).isEqualTo(0L);
            assertThat(drives.get(1)).containsOnlyKeys("device", "stats");

            r = (Map<String, Object>) Json.parse(c.exchange("{\"execute\": \"query-blockstats\", \"arguments\": "
                    + "{\"query-nodes\": true}}").get(0));
            List<Map<String, Object>> nodes = (List<Map<String, Object>>) r.get("return");
            assertThat(nodes).extracting(n -> n.get("node-name")).element(1).isEqualTo("node-top");
            assertThat(nodes).allSatisfy(n -> assertThat(n).doesNotContainKeys("device", "backing"));
            assertThat(stat(nodes.get(0), "wr_highest_offset")).isEqualTo(393216L);
            assertThat(stat(nodes.get(0), "account_invalid")).isEqualTo(false);
        }
    }

    @SuppressWarnings("unchecked")
    private static Object stat(Map<String, Object> s, String key) {
        return ((Map<String, Object>) s.get("stats")).get(key);
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
