package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static io.livemon.qmp.QmpProtocolTest.jsc;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import io.livemon.monitor.Interpreter;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Transcripts 11 and 13 (stream sessions): job events, verbs, manual finalize/dismiss, HMP and QMP together. */
class QmpJobsTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    static final String COMPLETED_S1 = "{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": "
            + "\"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"s1\", \"len\": 67108864, \"offset\": 67108864, "
            + "\"speed\": 0, \"type\": \"stream\"}}";

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

    private String hmp(String line) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(b, true, StandardCharsets.UTF_8);
        Interpreter.execute(fx.hmp.withOutput(ps, ps), line);
        return b.toString(StandardCharsets.UTF_8);
    }

    @Test
    void transcript11StreamFromStartToEnd() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}")).containsExactly("{\"return\": []}");
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"speed\": 4194304}}")).containsExactly(jsc("created", "virtio0"), jsc("running", "virtio0"),
                    "{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}").get(0)).matches("\\{\"return\": "
                    + "\\[\\{\"auto-finalize\": true, \"io-status\": \"ok\", \"device\": \"virtio0\", \"auto-dismiss\": "
                    + "true, \"busy\": (true|false), \"len\": 67108864, \"offset\": \\d+, \"status\": \"running\", "
                    + "\"paused\": false, \"speed\": 4194304, \"ready\": false, \"type\": \"stream\"}]}");
            assertThat(c.exchange("{\"execute\": \"query-jobs\"}").get(0)).matches("\\{\"return\": \\[\\{"
                    + "\"current-progress\": \\d+, \"status\": \"running\", \"total-progress\": 67108864, "
                    + "\"type\": \"stream\", \"id\": \"virtio0\"}]}");
            // the same job seen from HMP, in this process and through human-monitor-command
            assertThat(hmp("info block-jobs")).matches("Streaming device virtio0: Completed \\d+ of 67108864 bytes, "
                    + "speed limit 4194304 bytes/s\n");
            assertThat(c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"info block-jobs\"}}").get(0)).matches("\\{\"return\": \"Streaming device virtio0: Completed "
                    + "\\d+ of 67108864 bytes, speed limit 4194304 bytes/s\\\\r\\\\n\"}");
            List<String> end = c.until("\"null\"");
            assertThat(end.subList(end.size() - 5, end.size())).containsExactly(jsc("waiting", "virtio0"),
                    jsc("pending", "virtio0"), "{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": "
                            + "\"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"virtio0\", \"len\": 67108864, "
                            + "\"offset\": 67108864, \"speed\": 4194304, \"type\": \"stream\"}}",
                    jsc("concluded", "virtio0"), jsc("null", "virtio0"));
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}")).containsExactly("{\"return\": []}");
            assertThat(c.exchange("{\"execute\": \"query-jobs\"}")).containsExactly("{\"return\": []}");
            assertThat(c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"info block\"}}")).containsExactly("{\"return\": \"virtio0 (node-E): file-E.img (qcow2)\\r\\n"
                    + "    Removable device: not locked, tray closed\\r\\n    Cache mode:       writeback\\r\\n\"}");
            assertThat(c.exchange("{\"execute\": \"quit\"}")).containsExactly("{\"timestamp\": {\"seconds\": S, "
                    + "\"microseconds\": U}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": "
                    + "\"host-qmp-quit\"}}", "{\"return\": {}}");
            org.awaitility.Awaitility.await().until(() -> fx.quits.get() == 1);
        }
        fx.close();
        assertThat(QemuTools.qemuImg(dir, "info", "file-E.img").stdout()).doesNotContain("backing file");
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").ok()).isTrue();
    }

    @Test
    void transcript11StreamStartedInHmpRaisesQmpEvents() throws Exception {
        try (QmpTestClient c = fx.negotiated(); QmpTestClient other = fx.negotiated()) {
            assertThat(hmp("block_stream virtio0 0 file-A.img")).isEmpty();
            for (QmpTestClient x : List.of(c, other)) {
                List<String> ev = x.until("\"null\"");
                assertThat(ev).containsExactly(jsc("created", "virtio0"), jsc("running", "virtio0"),
                        jsc("waiting", "virtio0"), jsc("pending", "virtio0"), "{\"timestamp\": {\"seconds\": S, "
                                + "\"microseconds\": U}, \"event\": \"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": "
                                + "\"virtio0\", \"len\": 67108864, \"offset\": 67108864, \"speed\": 0, \"type\": "
                                + "\"stream\"}}", jsc("concluded", "virtio0"), jsc("null", "virtio0"));
            }
            // and through human-monitor-command: events before the (empty) reply
            fx.close();
        }
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").ok()).isTrue();
    }

    @Test
    void transcript13ManualFinalizeAndDismiss() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"s1\", \"device\": "
                    + "\"virtio0\", \"auto-finalize\": false, \"auto-dismiss\": false}}")).containsExactly(
                    jsc("created", "s1"), jsc("running", "s1"), "{\"return\": {}}");
            assertThat(c.until("BLOCK_JOB_PENDING")).containsExactly(jsc("waiting", "s1"), jsc("pending", "s1"),
                    "{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": \"BLOCK_JOB_PENDING\", "
                            + "\"data\": {\"type\": \"stream\", \"id\": \"s1\"}}");
            String[][] steps = {
                {"{\"execute\": \"query-block-jobs\"}", "{\"return\": [{\"auto-finalize\": false, \"io-status\": \"ok\", "
                    + "\"device\": \"s1\", \"auto-dismiss\": false, \"busy\": false, \"len\": 67108864, \"offset\": "
                    + "67108864, \"status\": \"pending\", \"paused\": false, \"speed\": 0, \"ready\": false, \"type\": "
                    + "\"stream\"}]}"},
                {"{\"execute\": \"query-jobs\"}", "{\"return\": [{\"current-progress\": 67108864, \"status\": "
                    + "\"pending\", \"total-progress\": 67108864, \"type\": \"stream\", \"id\": \"s1\"}]}"},
                {"{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"info block-jobs\"}}",
                    "{\"return\": \"Streaming device s1: Completed 67108864 of 67108864 bytes, speed limit 0 "
                        + "bytes/s\\r\\n\"}"},
                {"{\"execute\": \"block-job-dismiss\", \"arguments\": {\"id\": \"s1\"}}",
                    generic("Job 's1' in state 'pending' cannot accept command verb 'dismiss'")},
                {"{\"execute\": \"block-job-pause\", \"arguments\": {\"device\": \"s1\"}}",
                    generic("Job 's1' in state 'pending' cannot accept command verb 'pause'")},
                {"{\"execute\": \"block-job-resume\", \"arguments\": {\"device\": \"s1\"}}",
                    generic("Can't resume a job that was not paused")},
                {"{\"execute\": \"block-job-set-speed\", \"arguments\": {\"device\": \"s1\", \"speed\": 1}}",
                    generic("Job 's1' in state 'pending' cannot accept command verb 'set-speed'")},
                {"{\"execute\": \"block-job-complete\", \"arguments\": {\"device\": \"s1\"}}",
                    generic("Job 's1' in state 'pending' cannot accept command verb 'complete'")},
            };
            for (String[] s : steps) {
                assertThat(c.exchange(s[0])).as(s[0]).containsExactly(s[1]);
            }
            assertThat(c.exchange("{\"execute\": \"block-job-finalize\", \"arguments\": {\"id\": \"s1\"}}"))
                    .containsExactly(COMPLETED_S1, jsc("concluded", "s1"), "{\"return\": {}}");
            String[][] after = {
                {"{\"execute\": \"query-jobs\"}", "{\"return\": [{\"current-progress\": 67108864, \"status\": "
                    + "\"concluded\", \"total-progress\": 67108864, \"type\": \"stream\", \"id\": \"s1\"}]}"},
                {"{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"s1\"}}",
                    generic("Job 's1' in state 'concluded' cannot accept command verb 'cancel'")},
                {"{\"execute\": \"block-job-finalize\", \"arguments\": {\"id\": \"s1\"}}",
                    generic("Job 's1' in state 'concluded' cannot accept command verb 'finalize'")},
            };
            for (String[] s : after) {
                assertThat(c.exchange(s[0])).as(s[0]).containsExactly(s[1]);
            }
            assertThat(c.exchange("{\"execute\": \"block-job-dismiss\", \"arguments\": {\"id\": \"s1\"}}"))
                    .containsExactly(jsc("null", "s1"), "{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"query-jobs\"}")).containsExactly("{\"return\": []}");
        }
    }

    @Test
    void transcript13PendingJobCancelledKeepsItsNode() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"s1\", \"device\": \"virtio0\", "
                    + "\"auto-finalize\": false, \"auto-dismiss\": false}}");
            c.until("BLOCK_JOB_PENDING");
            assertThat(c.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"s1\"}}"))
                    .containsExactly(jsc("aborting", "s1"), "{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, "
                            + "\"event\": \"BLOCK_JOB_CANCELLED\", \"data\": {\"device\": \"s1\", \"len\": 67108864, "
                            + "\"offset\": 67108864, \"speed\": 0, \"type\": \"stream\"}}", jsc("concluded", "s1"),
                            "{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"query-jobs\"}")).containsExactly("{\"return\": [{\"current-progress\""
                    + ": 67108864, \"status\": \"concluded\", \"total-progress\": 67108864, \"type\": \"stream\", "
                    + "\"id\": \"s1\", \"error\": \"Operation canceled\"}]}");
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"s2\", \"device\": "
                    + "\"virtio0\"}}")).containsExactly(generic("Node 'virtio0' is busy: block device is in use by "
                    + "block job: stream"));
        }
        fx.close();
        assertThat(QemuTools.qemuImg(dir, "info", "file-E.img").stdout()).contains("backing file: file-D.img");
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").ok()).isTrue();
    }

    @Test
    void transcript13JobVerbsOnRateLimitedStream() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"s2\", \"device\": \"virtio0\", "
                    + "\"speed\": 1048576}}");
            List<String> pause = c.exchange("{\"execute\": \"job-pause\", \"arguments\": {\"id\": \"s2\"}}");
            assertThat(pause).contains("{\"return\": {}}");
            if (pause.size() == 1) {
                assertThat(QmpTestClient.mask(c.next())).isEqualTo(jsc("paused", "s2"));
            }
            assertThat(c.exchange("{\"execute\": \"job-pause\", \"arguments\": {\"id\": \"s2\"}}"))
                    .containsExactly(generic("Job is already paused"));
            assertThat(c.exchange("{\"execute\": \"job-resume\", \"arguments\": {\"id\": \"s2\"}}"))
                    .endsWith("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"job-resume\", \"arguments\": {\"id\": \"s2\"}}"))
                    .filteredOn(s -> !s.contains("JOB_STATUS_CHANGE"))
                    .containsExactly(generic("Can't resume a job that was not paused"));
            assertThat(c.exchange("{\"execute\": \"job-complete\", \"arguments\": {\"id\": \"s2\"}}"))
                    .filteredOn(s -> !s.contains("JOB_STATUS_CHANGE"))
                    .containsExactly(generic("Job 's2' in state 'running' cannot accept command verb 'complete'"));
            c.exchange("{\"execute\": \"job-pause\", \"arguments\": {\"id\": \"s2\"}}");
            org.awaitility.Awaitility.await().until(() -> fx.graph.jobInfos().get(0).status().qapiName()
                    .equals("paused"));
            List<String> cancel = c.exchange("{\"execute\": \"job-cancel\", \"arguments\": {\"id\": \"s2\"}}");
            List<String> tail = cancel.subList(cancel.size() - 6, cancel.size());
            assertThat(tail.get(0)).isEqualTo(jsc("running", "s2"));
            assertThat(tail.get(1)).isEqualTo(jsc("aborting", "s2"));
            assertThat(tail.get(2)).contains("\"event\": \"BLOCK_JOB_CANCELLED\"").contains("\"speed\": 1048576");
            assertThat(tail.subList(3, 6)).containsExactly(jsc("concluded", "s2"), jsc("null", "s2"),
                    "{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"query-jobs\"}")).containsExactly("{\"return\": []}");
        }
        fx.close();
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").ok()).isTrue();
    }
}
