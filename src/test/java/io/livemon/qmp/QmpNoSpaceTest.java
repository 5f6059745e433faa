package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.jsc;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.image.Errno;
import io.livemon.testsupport.QemuTools;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A mirror whose target fills a 2 MiB tmpfs: the errno decides (ENOSPC), as QEMU 7.2 reports it (recorded with
 * qemu-system-x86_64 on the same tmpfs): error text "No space left on device", on-error=enospc stops the job with
 * io-status "nospace".
 */
class QmpNoSpaceTest {
    @TempDir
    Path dir;
    QmpFixture fx;
    Path small;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QmpFixture.mkchain(dir, "64M");
        small = dir.resolve("small");
        Files.createDirectory(small);
        Assumptions.assumeTrue(QemuTools.run(dir, "mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                small.toString()).exitCode() == 0, "mounting a tmpfs needs root");
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT, QmpFixture.DRIVE_E);
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
        if (small != null) {
            QemuTools.run(dir, "umount", small.toString());
        }
    }

    private static String mirror(String onError) {
        return "{\"execute\": \"drive-mirror\", \"arguments\": {\"device\": \"virtio0\", "
                + "\"target\": \"small/m.qcow2\", \"format\": \"qcow2\", \"sync\": \"full\", \"job-id\": \"m\""
                + onError + "}}";
    }

    @Test
    void aJobThatRunsOutOfSpaceReportsNoSpace() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange(mirror(""));
            String all = String.join("\n", c.until("\"null\""));
            assertThat(all).contains("\"action\": \"report\"").containsPattern("\"BLOCK_JOB_COMPLETED\", \"data\": "
                    + "\\{\"device\": \"m\", \"len\": \\d+, \"offset\": \\d+, \"speed\": 0, \"type\": \"mirror\", "
                    + "\"error\": \"No space left on device\"}");
        }
    }

    @Test
    void onErrorEnospcStopsWithIoStatusNospace() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            c.exchange(mirror(", \"on-source-error\": \"enospc\", \"on-target-error\": \"enospc\""));
            assertThat(String.join("\n", c.until("\"paused\""))).contains("\"operation\": \"write\", "
                    + "\"action\": \"stop\"");
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}").get(0))
                    .contains("\"io-status\": \"nospace\"").contains("\"status\": \"paused\"");
            assertThat(String.join("\n", c.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": "
                    + "{\"device\": \"m\", \"force\": true}}"))).contains(jsc("null", "m"));
        }
    }

    @Test
    void errnoIsDecidedOnceFromTheValueOrTheJdksText() {
        IOException injected = Errno.ofNumber(28).failure();
        assertThat(Errno.of(new IOException("wrapped", injected))).isEqualTo(Errno.ENOSPC);
        assertThat(Errno.of(new IOException("No space left on device"))).isEqualTo(Errno.ENOSPC);
        assertThat(Errno.of(new IOException("write of x.qcow2: No space left on device"))).isEqualTo(Errno.ENOSPC);
        assertThat(Errno.of(new IOException("disk on fire"))).isEqualTo(Errno.EIO);
        assertThat(Errno.EIO.strerror).isEqualTo("Input/output error");
    }
}
