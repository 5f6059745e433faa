package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.err;
import static io.livemon.qmp.QmpProtocolTest.generic;
import static io.livemon.qmp.QmpProtocolTest.jsc;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Transcript 06 b) and c): block-commit over QMP, intermediate and active, with QEMU 7.2's refusals. */
class QmpCommitTest {
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

    private static String completed(String id, long len, long speed) {
        return "{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": \"BLOCK_JOB_COMPLETED\", \"data\": "
                + "{\"device\": \"" + id + "\", \"len\": " + len + ", \"offset\": " + len + ", \"speed\": " + speed
                + ", \"type\": \"commit\"}}";
    }

    private String chain(String image) {
        return String.join("\n", QemuTools.qemuImg(dir, "info", "-U", "--backing-chain", image).stdout().lines()
                .filter(l -> l.startsWith("image:") || l.startsWith("backing file:")).toList());
    }

    @Test
    void transcript06bIntermediateCommitOfCAndBIntoA() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"top-node\": \"node-C\", \"base-node\": \"node-A\", \"speed\": 1048576}}"))
                    .containsExactly(jsc("created", "virtio0"), jsc("running", "virtio0"), RETURN);
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}").get(0)).matches("\\{\"return\": "
                    + "\\[\\{\"auto-finalize\": true, \"io-status\": \"ok\", \"device\": \"virtio0\", \"auto-dismiss\": "
                    + "true, \"busy\": (true|false), \"len\": 67108864, \"offset\": \\d+, \"status\": \"running\", "
                    + "\"paused\": false, \"speed\": 1048576, \"ready\": false, \"type\": \"commit\"}]}");
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\"}}"))
                    .containsExactly(generic("Need a root block node"));
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-A\", "
                    + "\"job-id\": \"s\"}}"))
                    .containsExactly(generic("Node 'node-A' is busy: block device is in use by block job: commit"));
            assertThat(c.until("\"null\"")).containsExactly(jsc("waiting", "virtio0"), jsc("pending", "virtio0"),
                    completed("virtio0", 67108864, 1048576), jsc("concluded", "virtio0"), jsc("null", "virtio0"));
            assertThat(c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"info block\"}}")).containsExactly("{\"return\": \"virtio0 (node-E): file-E.img (qcow2)\\r\\n"
                    + "    Removable device: not locked, tray closed\\r\\n    Cache mode:       writeback\\r\\n"
                    + "    Backing file:     file-D.img (chain depth: 2)\\r\\n\"}");
        }
        fx.close();
        fx = null;
        assertThat(chain("file-E.img")).isEqualTo("image: file-E.img\nbacking file: file-D.img\nimage: file-D.img\n"
                + "backing file: file-A.img\nimage: file-A.img");
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").ok()).isTrue();
        for (String f : new String[] {"A", "B", "C", "D", "E"}) {
            QemuTools.assertClean(dir, "file-" + f + ".img");
        }
    }

    @Test
    void transcript06cActiveCommitReadyComplete() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"job-id\": \"c1\"}}")).containsExactly(jsc("created", "c1"), jsc("running", "c1"), RETURN);
            assertThat(c.until("BLOCK_JOB_READY")).containsExactly(jsc("ready", "c1"), "{\"timestamp\": {\"seconds\": "
                    + "S, \"microseconds\": U}, \"event\": \"BLOCK_JOB_READY\", \"data\": {\"device\": \"c1\", \"len\": "
                    + "4194304, \"offset\": 4194304, \"speed\": 0, \"type\": \"commit\"}}");
            // QEMU shows busy false; here the job may be between its READY event and its idle wait
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}").get(0)).matches("\\{\"return\": \\[\\{"
                    + "\"auto-finalize\": true, \"io-status\": \"ok\", \"device\": \"c1\", \"auto-dismiss\": true, "
                    + "\"busy\": (true|false), \"len\": 4194304, \"offset\": 4194304, \"status\": \"ready\", "
                    + "\"paused\": false, \"speed\": 0, \"ready\": true, \"type\": \"commit\"}]}");
            assertThat(c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"info block-jobs\"}}")).containsExactly("{\"return\": \"Type commit, device c1: Completed "
                    + "4194304 of 4194304 bytes, speed limit 0 bytes/s\\r\\n\"}");
            List<String> done = c.exchange("{\"execute\": \"block-job-complete\", \"arguments\": {\"device\": "
                    + "\"c1\"}}");
            assertThat(done.get(done.size() - 1)).isEqualTo(RETURN);
            done.addAll(c.until("\"null\""));
            done.remove(RETURN);
            assertThat(done).containsExactly(jsc("waiting", "c1"), jsc("pending", "c1"), completed("c1", 4194304, 0),
                    jsc("concluded", "c1"), jsc("null", "c1"));
            assertThat(c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"info block\"}}")).containsExactly("{\"return\": \"virtio0 (node-A): file-A.img (qcow2)\\r\\n"
                    + "    Removable device: not locked, tray closed\\r\\n    Cache mode:       writeback\\r\\n\"}");
        }
        fx.close();
        fx = null;
        assertThat(chain("file-A.img")).isEqualTo("image: file-A.img");
        assertThat(QemuTools.compare(dir, "before.raw", "file-A.img").ok()).isTrue();
        assertThat(chain("file-E.img")).isEqualTo("image: file-E.img\nbacking file: file-D.img\nimage: file-D.img\n"
                + "backing file: file-C.img\nimage: file-C.img\nbacking file: file-B.img\nimage: file-B.img\n"
                + "backing file: file-A.img\nimage: file-A.img");
    }

    @Test
    void activeCommitCancelledWhenReadyKeepsTheDrive() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", \"job-id\": \"a1\"}}");
            c.until("BLOCK_JOB_READY");
            List<String> got = c.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": "
                    + "\"a1\"}}");
            if (!got.contains(jsc("null", "a1"))) {
                got.addAll(c.until("\"null\""));
            }
            assertThat(got).contains(RETURN);
            got.remove(RETURN);
            assertThat(got).containsExactly(jsc("waiting", "a1"), jsc("pending", "a1"), completed("a1", 4194304, 0),
                    jsc("concluded", "a1"), jsc("null", "a1"));
            c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", \"job-id\": \"a2\"}}");
            c.until("BLOCK_JOB_READY");
            assertThat(c.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"a2\", "
                    + "\"force\": true}}")).containsExactly(jsc("aborting", "a2"), "{\"timestamp\": {\"seconds\": S, "
                    + "\"microseconds\": U}, \"event\": \"BLOCK_JOB_CANCELLED\", \"data\": {\"device\": \"a2\", "
                    + "\"len\": 4194304, \"offset\": 4194304, \"speed\": 0, \"type\": \"commit\"}}",
                    jsc("concluded", "a2"), jsc("null", "a2"), RETURN);
            assertThat(c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"info block\"}}").get(0)).startsWith("{\"return\": \"virtio0 (node-E): file-E.img (qcow2)");
        }
    }

    /** QEMU 7.2's answers (qemu-system-x86_64 7.2.22) to bad block-commit arguments. */
    @Test
    void refusals() throws Exception {
        String[][] cases = {
            {"{\"device\": \"nosuch\"}", err("DeviceNotFound", "Device 'nosuch' not found")},
            {"{\"device\": \"node-C\"}", generic("Need a root block node")},
            {"{\"device\": \"virtio0\", \"top-node\": \"nosuch\"}",
                generic("Cannot find device='' nor node-name='nosuch'")},
            {"{\"device\": \"virtio0\", \"top\": \"nosuch.img\"}", generic("Top image file nosuch.img not found")},
            {"{\"device\": \"virtio0\", \"base\": \"nosuch.img\"}",
                generic("Can't find 'nosuch.img' in the backing chain")},
            {"{\"device\": \"virtio0\", \"top\": \"file-C.img\", \"top-node\": \"node-C\"}",
                generic("'top-node' and 'top' are mutually exclusive")},
            {"{\"device\": \"virtio0\", \"base\": \"file-A.img\", \"base-node\": \"node-A\"}",
                generic("'base-node' and 'base' are mutually exclusive")},
            {"{\"device\": \"virtio0\", \"top-node\": \"node-B\", \"base-node\": \"node-C\"}",
                generic("'node-C' is not in this backing file chain")},
            {"{\"device\": \"virtio0\", \"top-node\": \"node-C\", \"base-node\": \"node-C\"}",
                generic("cannot commit an image into itself")},
            {"{\"device\": \"virtio0\", \"top-node\": \"node-A\"}", generic("cannot commit an image into itself")},
            {"{\"device\": \"virtio0\", \"base-node\": \"node-E\"}", generic("cannot commit an image into itself")},
            {"{\"device\": \"virtio0\", \"job-id\": \"1bad\"}", generic("Invalid job ID '1bad'")},
            {"{\"device\": \"virtio0\", \"backing-file\": \"x.img\"}",
                generic("'backing-file' specified, but 'top' is the active layer")},
            {"{\"device\": \"virtio0\", \"on-error\": \"bogus\"}", null},
        };
        try (QmpTestClient c = fx.negotiated()) {
            for (String[] k : cases) {
                List<String> got = c.exchange("{\"execute\": \"block-commit\", \"arguments\": " + k[0] + "}");
                if (k[1] != null) {
                    assertThat(got).as(k[0]).containsExactly(k[1]);
                } else {
                    assertThat(got).as(k[0]).hasSize(1);
                    assertThat(got.get(0)).startsWith("{\"error\": {\"class\": \"GenericError\"");
                }
            }
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"speed\": -1}}")).containsExactly(jsc("created", "virtio0"), jsc("null", "virtio0"),
                    generic("Parameter 'speed' expects a non-negative value"));
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"filter-node-name\": \"1f\"}}")).containsExactly(generic("Invalid node-name: '1f'"));
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"filter-node-name\": \"node-B\"}}"))
                    .containsExactly(generic("Duplicate nodes with node-name='node-B'"));
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}")).containsExactly("{\"return\": []}");
            // the filter takes the name while the job runs, and gives it back when the job ends
            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"filter-node-name\": \"f\", \"speed\": 1}}")).endsWith("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", "
                    + "\"node-name\": \"f\"}}")).containsExactly(generic("Duplicate nodes with node-name='f'"));
            List<String> cancel = c.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": "
                    + "\"virtio0\", \"force\": true}}");
            assertThat(cancel).endsWith("{\"return\": {}}");
            if (cancel.stream().noneMatch(l -> l.contains("\"null\""))) {
                c.until("\"null\"");
            }
            assertThat(c.exchange("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", "
                    + "\"node-name\": \"f\"}}")).containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"query-commands\"}").get(0))
                    .contains("{\"name\": \"block-commit\"}");
        }
    }
}
