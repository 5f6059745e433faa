package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Guest devices as attachments (issue 9): device_add gives a drive its qdev id, shown by info block and query-block;
 * device_del takes the drive with it, cancelling its job first, as QEMU does for a -drive (iotest 040
 * test_hot_unplug).
 */
class QmpGuestDevicesTest {
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

    private static String hmp(QmpTestClient c, String line) throws Exception {
        return String.join("", c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": "
                + "{\"command-line\": \"" + line + "\"}}"));
    }

    @Test
    void anAttachedDriveShowsItsDeviceAndGoesWithIt() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            assertThat(c.exchange("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"nosuch\", "
                    + "\"id\": \"x\"}}")).containsExactly(generic("'nosuch' is not a valid device model name"));
            assertThat(c.exchange("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"scsi-hd\", "
                    + "\"id\": \"x\", \"drive\": \"nosuch\"}}"))
                    .containsExactly(generic("Property 'scsi-hd.drive' can't find value 'nosuch'"));
            assertThat(c.exchange("{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"scsi-hd\", "
                    + "\"id\": \"scsi0\", \"drive\": \"virtio0\", \"bus\": \"vio-scsi.0\"}}"))
                    .containsExactly("{\"return\": {}}");
            assertThat(hmp(c, "info block virtio0")).contains("Attached to:      scsi0")
                    .doesNotContain("Removable device");
            assertThat(String.join("", c.exchange("{\"execute\": \"query-block\"}")))
                    .contains("\"qdev\": \"scsi0\"").contains("\"removable\": false");
            assertThat(hmp(c, "eject virtio0")).contains("Device 'virtio0' is not removable");

            assertThat(c.exchange("{\"execute\": \"block-commit\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"top-node\": \"node-C\", \"base-node\": \"node-A\", \"speed\": 4096}}"))
                    .contains("{\"return\": {}}");
            List<String> out = c.exchange("{\"execute\": \"device_del\", \"arguments\": {\"id\": \"scsi0\"}}");
            out.addAll(c.until("\"null\""));
            assertThat(out).anyMatch(l -> l.contains("\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"scsi0\", "
                    + "\"path\": \"/machine/peripheral/scsi0\"}"));
            assertThat(out).anyMatch(l -> l.contains("\"event\": \"BLOCK_JOB_CANCELLED\""));
            assertThat(c.exchange("{\"execute\": \"query-block\"}")).containsExactly("{\"return\": []}");
            assertThat(c.exchange("{\"execute\": \"device_del\", \"arguments\": {\"id\": \"scsi0\"}}"))
                    .containsExactly(QmpProtocolTest.err("DeviceNotFound", "Device 'scsi0' not found"));
        }
        fx.close();
        fx = null;
        QemuTools.assertClean(dir, "file-A.img");
    }
}
