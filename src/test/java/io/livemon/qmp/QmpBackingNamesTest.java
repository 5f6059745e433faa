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
 * query-block after a stream whose backing-file names the base by another spelling, and detect_zeroes: the values
 * QEMU 7.2.22 answered for the same session (json: pseudo-filename, backing_file = the backing node's name,
 * backing-filename = the header's string).
 */
class QmpBackingNamesTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QmpFixture.mkchain(dir, "16M");
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT,
                "file=file-E.img,if=none,id=virtio0,node-name=node-E,detect-zeroes=on");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void streamWithAnotherSpellingOfTheBaseShowsQemusNames() throws Exception {
        String json = "json:{\\\"backing\\\": {\\\"driver\\\": \\\"qcow2\\\", \\\"file\\\": {\\\"driver\\\": "
                + "\\\"file\\\", \\\"filename\\\": \\\"file-B.img\\\"}}, \\\"driver\\\": \\\"qcow2\\\", \\\"file\\\": "
                + "{\\\"driver\\\": \\\"file\\\", \\\"filename\\\": \\\"file-E.img\\\"}}";
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"base\": \"file-B.img\", \"backing-file\": \"file-X.img\"}}"))
                    .containsExactly(generic("Backing file string 'file-X.img' does not lead to 'file-B.img' from "
                            + "the directory of 'file-E.img'"));
            c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"base\": \"file-B.img\", \"backing-file\": \"./file-B.img\"}}");
            assertThat(fx.graph.awaitNoJobs(60_000)).isTrue();
            String qb = c.exchange("{\"execute\": \"query-block\"}").stream()
                    .filter(s -> s.startsWith("{\"return\"")).findFirst().orElseThrow();
            assertThat(qb).contains("\"detect_zeroes\": \"on\"", "\"backing_file\": \"file-B.img\"",
                    "\"file\": \"" + json + "\"", "\"filename\": \"" + json + "\"",
                    "\"backing-filename\": \"./file-B.img\"", "\"full-backing-filename\": \"./file-B.img\"");
        }
        fx.close();
        fx = null;
        assertThat(QemuTools.qemuImg(dir, "info", "--backing-chain", "file-E.img").stdout())
                .contains("backing file: ./file-B.img");
    }
}
