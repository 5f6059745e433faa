package io.livemon.qmp;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Persistent bitmaps in query-named-block-nodes' format-specific data and in {@code info block -v}, in QEMU 7.2's
 * shape (checked against qemu-system-x86_64 7.2 by hand): the open top's bitmap is in-use, the read-only backing
 * file's is not.
 */
class QmpBitmapInfoTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "base.qcow2", "16M");
        QemuTools.qemuImg(dir, "bitmap", "--add", "-g", "1M", "base.qcow2", "b0");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        QemuTools.qemuImg(dir, "bitmap", "--add", "top.qcow2", "t0");
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT,
                "file=top.qcow2,if=none,id=virtio0,node-name=node-top,backing.node-name=node-base");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void bitmapsAreListedAsQemuListsThem() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            String nodes = c.exchange("{\"execute\": \"query-named-block-nodes\", \"arguments\": {\"flat\": true}}")
                    .get(0);
            assertThat(nodes).contains("\"lazy-refcounts\": false, \"bitmaps\": [{\"flags\": [\"in-use\", \"auto\"], "
                    + "\"name\": \"t0\", \"granularity\": 65536}], \"refcount-bits\": 16");
            assertThat(nodes).contains("\"bitmaps\": [{\"flags\": [\"auto\"], \"name\": \"b0\", "
                    + "\"granularity\": 1048576}]");
            String hmp = c.exchange("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
                    + "\"info block -v\"}}").get(0);
            assertThat(hmp).contains("    lazy refcounts: false\\r\\n    bitmaps:\\r\\n        [0]:\\r\\n"
                    + "            flags:\\r\\n                [0]: in-use\\r\\n                [1]: auto\\r\\n"
                    + "            name: t0\\r\\n            granularity: 65536\\r\\n    refcount bits: 16");
        }
    }
}
