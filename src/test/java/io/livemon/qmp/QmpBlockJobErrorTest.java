package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static io.livemon.qmp.QmpProtocolTest.jsc;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.cli.BlockdevArg;
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
 * Transcript 14: a stream over a -blockdev graph whose node-D reads its file through blkdebug, which fails the read
 * of D's data cluster (host sector 640) with EIO. Sessions 1 (on-error report), 2 (on-error stop, resume, cancel)
 * and 3 (HMP), compared as QEMU sent them but for timestamps: the progress offsets too (3145728, the start of D's
 * data, where QEMU's failing 512 KiB read begins).
 */
class QmpBlockJobErrorTest {
    /** The graph of 14-qmp-block-job-error.sh. */
    static final String[] GRAPH = {
        bd("A", "{\"driver\":\"file\",\"filename\":\"file-A.img\"}", ""),
        bd("B", "{\"driver\":\"file\",\"filename\":\"file-B.img\"}", ",\"backing\":\"node-A\""),
        bd("C", "{\"driver\":\"file\",\"filename\":\"file-C.img\"}", ",\"backing\":\"node-B\""),
        bd("D", "{\"driver\":\"blkdebug\",\"config\":\"dbg.conf\",\"image\":{\"driver\":\"file\","
                + "\"filename\":\"file-D.img\"}}", ",\"backing\":\"node-C\""),
        bd("E", "{\"driver\":\"file\",\"filename\":\"file-E.img\"}", ",\"backing\":\"node-D\""),
    };
    static final String CONF = "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"640\"\n";

    @TempDir
    Path dir;
    QmpFixture fx;

    static String bd(String n, String file, String rest) {
        return "{\"driver\":\"qcow2\",\"node-name\":\"node-" + n + "\",\"file\":" + file + rest + "}";
    }

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QmpFixture.mkchain(dir, "64M");
        QemuTools.toRaw(dir, "file-E.img", "before.raw");
        Files.writeString(dir.resolve("dbg.conf"), CONF);
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT);
        for (String b : GRAPH) {
            fx.graph.addBlockdev(BlockdevArg.parse(b));
        }
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    /** A transcript line, its timestamp masked as the client masks received ones. */
    static String line(String s) {
        return QmpTestClient.ev(s);
    }

    private void afterwardsChainUnchangedAndClean() {
        fx.close();
        fx = null;
        String chain = QemuTools.qemuImg(dir, "info", "-U", "--backing-chain", "file-E.img").stdout();
        assertThat(chain.lines().filter(l -> l.startsWith("image:") || l.startsWith("backing file:")).toList())
                .containsExactly("image: file-E.img", "backing file: file-D.img", "image: file-D.img",
                        "backing file: file-C.img", "image: file-C.img", "backing file: file-B.img",
                        "image: file-B.img", "backing file: file-A.img", "image: file-A.img");
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").ok()).isTrue();
        // as QEMU leaves it: the 512 KiB steps before the failing read are copied into E, D's data is still D's
        List<String> map = QemuTools.qemuImg(dir, "map", "--output=json", "file-E.img").stdout().lines().toList();
        assertThat(map.get(0)).startsWith("[{ \"start\": 0, \"length\": 3145728, \"depth\": 0, \"present\": true, "
                + "\"zero\": false, \"data\": true");
        assertThat(map.get(1)).startsWith("{ \"start\": 3145728, \"length\": 1048576, \"depth\": 1, ");
        for (String n : new String[] {"A", "B", "C", "D", "E"}) {
            QemuTools.assertClean(dir, "file-" + n + ".img");
        }
    }

    @Test
    void session1OnErrorReportFailsTheJobWithInputOutputError() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"job0\", "
                    + "\"device\": \"node-E\", \"auto-dismiss\": false}}"))
                    .containsExactly(jsc("created", "job0"), jsc("running", "job0"), "{\"return\": {}}");
            List<String> ev = c.until("\"concluded\"");
            assertThat(ev).hasSize(4);
            assertThat(ev.get(0)).isEqualTo(line("{\"timestamp\": {\"seconds\": 1795654832, \"microseconds\": "
                    + "256016}, \"event\": \"BLOCK_JOB_ERROR\", \"data\": {\"device\": \"job0\", \"operation\": "
                    + "\"read\", \"action\": \"report\"}}"));
            assertThat(ev.get(1)).isEqualTo(jsc("aborting", "job0"));
            assertThat(ev.get(2)).isEqualTo(line("{\"timestamp\": {\"seconds\": 1795654832, \"microseconds\": "
                    + "256091}, \"event\": \"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"job0\", \"len\": "
                    + "67108864, \"offset\": 3145728, \"speed\": 0, \"type\": \"stream\", \"error\": "
                    + "\"Input/output error\"}}"));
            assertThat(ev.get(3)).isEqualTo(jsc("concluded", "job0"));
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}").get(0)).isEqualTo(line(
                    "{\"return\": [{\"auto-finalize\": true, \"io-status\": \"ok\", \"device\": \"job0\", "
                    + "\"auto-dismiss\": false, \"busy\": false, \"len\": 67108864, \"offset\": 3145728, "
                    + "\"status\": \"concluded\", \"paused\": false, \"speed\": 0, \"ready\": false, \"type\": "
                    + "\"stream\", \"error\": \"Input/output error\"}]}"));
            assertThat(c.exchange("{\"execute\": \"query-jobs\"}").get(0)).isEqualTo(line(
                    "{\"return\": [{\"current-progress\": 3145728, \"status\": \"concluded\", \"total-progress\": "
                    + "67108864, \"type\": \"stream\", \"id\": \"job0\", \"error\": \"Input/output error\"}]}"));
            assertThat(c.exchange("{\"execute\": \"job-dismiss\", \"arguments\": {\"id\": \"job0\"}}"))
                    .containsExactly(jsc("null", "job0"), "{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"quit\"}")).containsExactly("{\"timestamp\": {\"seconds\": S, "
                    + "\"microseconds\": U}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": "
                    + "\"host-qmp-quit\"}}", "{\"return\": {}}");
        }
        afterwardsChainUnchangedAndClean();
    }

    @Test
    void session2OnErrorStopPausesResumeRetriesCancelNeedsForce() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"job0\", "
                    + "\"device\": \"node-E\", \"on-error\": \"stop\"}}"))
                    .containsExactly(jsc("created", "job0"), jsc("running", "job0"), "{\"return\": {}}");
            String stopError = line("{\"timestamp\": {\"seconds\": 1795654832, \"microseconds\": 784683}, "
                    + "\"event\": \"BLOCK_JOB_ERROR\", \"data\": {\"device\": \"job0\", \"operation\": \"read\", "
                    + "\"action\": \"stop\"}}");
            assertThat(c.until("\"paused\"")).containsExactly(stopError, jsc("paused", "job0"));
            Thread.sleep(300);
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}").get(0)).isEqualTo(line(
                    "{\"return\": [{\"auto-finalize\": true, \"io-status\": \"failed\", \"device\": \"job0\", "
                    + "\"auto-dismiss\": true, \"busy\": false, \"len\": 67108864, \"offset\": 3145728, "
                    + "\"status\": \"paused\", \"paused\": true, \"speed\": 0, \"ready\": false, \"type\": "
                    + "\"stream\"}]}"));
            assertThat(c.exchange("{\"execute\": \"query-jobs\"}").get(0)).isEqualTo(line(
                    "{\"return\": [{\"current-progress\": 3145728, \"status\": \"paused\", \"total-progress\": "
                    + "67108864, \"type\": \"stream\", \"id\": \"job0\"}]}"));
            assertThat(c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": "
                    + "{\"command-line\": \"info block-jobs\"}}").get(0)).isEqualTo(line("{\"return\": \"Streaming "
                    + "device job0: Completed 3145728 of 67108864 bytes, speed limit 0 bytes/s\\r\\n\"}"));
            // the retry fails at once; the error event comes before the reply
            assertThat(c.exchange("{\"execute\": \"block-job-resume\", \"arguments\": {\"device\": \"job0\"}}"))
                    .containsExactly(jsc("running", "job0"), stopError, jsc("paused", "job0"), "{\"return\": {}}");
            Thread.sleep(300);
            assertThat(c.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"job0\"}}"))
                    .containsExactly(generic("The block job for device 'job0' is currently paused"));
            List<String> cancel = c.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": "
                    + "{\"device\": \"job0\", \"force\": true}}");
            assertThat(cancel).hasSize(6);
            assertThat(cancel.subList(0, 2)).containsExactly(jsc("running", "job0"), jsc("aborting", "job0"));
            assertThat(cancel.get(2)).isEqualTo(line(
                    "{\"timestamp\": {\"seconds\": 1795654833, \"microseconds\": 388609}, \"event\": "
                    + "\"BLOCK_JOB_CANCELLED\", \"data\": {\"device\": \"job0\", \"len\": 67108864, \"offset\": "
                    + "3145728, \"speed\": 0, \"type\": \"stream\"}}"));
            assertThat(cancel.subList(3, 6)).containsExactly(jsc("concluded", "job0"), jsc("null", "job0"),
                    "{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"quit\"}")).containsExactly("{\"timestamp\": {\"seconds\": S, "
                    + "\"microseconds\": U}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": "
                    + "\"host-qmp-quit\"}}", "{\"return\": {}}");
        }
        afterwardsChainUnchangedAndClean();
    }

    @Test
    void session3HmpBlockStreamHitsTheSameErrorAndPrintsNothing() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(hmp("block_stream node-E")).isEmpty();
            // the job is addressed by its node name; it fails with on-error=report and dismisses itself
            List<String> ev = c.until("\"null\"");
            assertThat(ev.get(0)).isEqualTo(jsc("created", "node-E"));
            assertThat(ev.get(1)).isEqualTo(jsc("running", "node-E"));
            assertThat(ev.get(2)).isEqualTo(line("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 1}, \"event\": "
                    + "\"BLOCK_JOB_ERROR\", \"data\": {\"device\": \"node-E\", \"operation\": \"read\", "
                    + "\"action\": \"report\"}}"));
            assertThat(ev.get(ev.size() - 1)).isEqualTo(jsc("null", "node-E"));
        }
        Thread.sleep(100);
        assertThat(hmp("info block-jobs")).isEqualTo("No active jobs\n");
        afterwardsChainUnchangedAndClean();
    }

    @Test
    void withoutJobIdANodeWithoutDeviceIsRefused() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-E\"}}"))
                    .containsExactly(generic("Invalid job ID ''"));
        }
    }

    private String hmp(String line) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(b, true, StandardCharsets.UTF_8);
        Interpreter.execute(fx.hmp.withOutput(ps, ps), line);
        return b.toString(StandardCharsets.UTF_8);
    }
}
