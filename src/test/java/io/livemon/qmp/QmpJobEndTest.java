package io.livemon.qmp;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The end of a job as QEMU 7.2's main loop makes it: the last event, concluded and dismissed in one step. */
class QmpJobEndTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        fx = QmpFixture.seed(dir, "16M");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    /**
     * Whoever has the BLOCK_JOB_COMPLETED / BLOCK_JOB_CANCELLED event of an auto-dismiss job no longer finds the job:
     * an event subscriber asking at once, and a QMP client querying right after reading it.
     */
    @Test
    void anAutoDismissJobIsGoneOnceItsLastEventIsSeen() throws Exception {
        List<String> seenWithJob = new CopyOnWriteArrayList<>();
        fx.graph.events().subscribe(e -> {
            if (e.name().startsWith("BLOCK_JOB_C")
                    && fx.graph.jobInfos().stream().anyMatch(j -> j.id().equals(e.data().get("device")))) {
                seenWithJob.add(e.name() + " " + e.data().get("device"));
            }
        });
        try (QmpTestClient c = fx.negotiated()) {
            for (int i = 0; i < 4; i++) {
                String base = i < 3 ? "node-C" : "node-B";
                c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-D\", \"job-id\": \"s"
                        + i + "\", \"base-node\": \"" + base + "\"}}");
                c.until("BLOCK_JOB_COMPLETED");
                assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}")).as("job s" + i).last()
                        .isEqualTo("{\"return\": []}");
            }
            c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"node-D\", \"job-id\": \"x\", "
                    + "\"speed\": 1}}");
            c.send("{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"x\"}}\n");
            c.until("BLOCK_JOB_CANCELLED");
            c.send("{\"execute\": \"query-block-jobs\"}\n");
            assertThat(c.until("{\"return\": [")).last().isEqualTo("{\"return\": []}");
        }
        assertThat(seenWithJob).isEmpty();
    }
}
