package io.livemon.qmp;

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

/** quit with jobs still there: QEMU 7.2 cancels each (newest first) between SHUTDOWN and the reply. */
class QmpQuitTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        fx = QmpFixture.seed(dir, "64M");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    private static String cancelled(String id, String type, String lenAndSpeed) {
        return "\\{\"timestamp\": \\{\"seconds\": S, \"microseconds\": U}, \"event\": \"BLOCK_JOB_CANCELLED\", "
                + "\"data\": \\{\"device\": \"" + id + "\", \"len\": \\d+, \"offset\": \\d+, \"speed\": " + lenAndSpeed
                + ", \"type\": \"" + type + "\"}}";
    }

    @Test
    void quitCancelsEveryJobBeforeItAnswers() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-C\", \"base-node\": "
                    + "\"node-A\", \"job-id\": \"s\", \"speed\": 1}}");
            c.exchange("{\"execute\": \"drive-mirror\", \"arguments\": {\"device\": \"virtio0\", \"target\": "
                    + "\"m.qcow2\", \"format\": \"qcow2\", \"sync\": \"top\", \"job-id\": \"m\"}}");
            c.until("BLOCK_JOB_READY");
            List<String> paused = c.exchange("{\"execute\": \"block-job-pause\", \"arguments\": {\"device\": "
                    + "\"s\"}}");
            // the pause takes effect when the job thread reaches its pause point: quit must find the job paused
            if (!paused.contains(jsc("paused", "s"))) {
                c.until(jsc("paused", "s"));
            }
            List<String> got = c.exchange("{\"execute\": \"quit\"}");
            got.removeIf(l -> l.equals(jsc("paused", "s")) || l.equals(jsc("standby", "m")));
            assertThat(got).hasSize(11);
            assertThat(got.get(0)).isEqualTo("{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": "
                    + "\"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}");
            // the mirror (newest) first: aborting, CANCELLED, concluded, null; then the paused stream runs and goes
            assertThat(got.get(1)).isEqualTo(jsc("aborting", "m"));
            assertThat(got.get(2)).matches(cancelled("m", "mirror", "0"));
            assertThat(got.subList(3, 5)).containsExactly(jsc("concluded", "m"), jsc("null", "m"));
            assertThat(got.get(5)).isEqualTo(jsc("running", "s"));
            assertThat(got.get(6)).isEqualTo(jsc("aborting", "s"));
            assertThat(got.get(7)).matches(cancelled("s", "stream", "1"));
            assertThat(got.subList(8, 11)).containsExactly(jsc("concluded", "s"), jsc("null", "s"),
                    "{\"return\": {}}");
        }
        // the quit itself runs right after the reply is sent
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(10)).until(() -> fx.quits.get() == 1);
    }

    /** A job stopped by an I/O error (on-error=stop) is cancelled by quit too, before the reply. */
    @Test
    void quitCancelsAJobStoppedOnAnIoError() throws Exception {
        fx.close();
        java.nio.file.Files.writeString(dir.resolve("dbg.conf"), QmpBlockJobErrorTest.CONF);
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT);
        for (String b : QmpBlockJobErrorTest.GRAPH) {
            fx.graph.addBlockdev(io.livemon.cli.BlockdevArg.parse(b));
        }
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"job-id\": \"job0\", "
                    + "\"device\": \"node-E\", \"on-error\": \"stop\"}}");
            c.until("\"paused\"");
            List<String> got = c.exchange("{\"execute\": \"quit\"}");
            assertThat(got.get(0)).contains("\"SHUTDOWN\"");
            assertThat(got.subList(1, got.size())).containsSubsequence(jsc("aborting", "job0"),
                    jsc("concluded", "job0"), jsc("null", "job0"), "{\"return\": {}}");
            assertThat(String.join("\n", got)).contains("\"BLOCK_JOB_CANCELLED\", \"data\": {\"device\": \"job0\"");
        }
        assertThat(fx.graph.jobInfos()).isEmpty();
    }
}
