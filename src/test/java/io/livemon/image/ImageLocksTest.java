package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.OutputStream;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** QEMU's image locking, checked against qemu-img and qemu-io on the same files. */
class ImageLocksTest {
    @TempDir
    Path dir;

    private void image(String name) {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", name, "4M");
    }

    @Test
    void qemuToolsAreKeptAwayFromAnImageLivemonWrites() throws Exception {
        image("x.qcow2");
        try (Image img = Images.openChain(dir, "x.qcow2", null, false)) {
            QemuTools.Result info = QemuTools.run(dir, "qemu-img", "info", "x.qcow2");
            assertThat(info.exitCode()).isNotZero();
            assertThat(info.stderr()).contains("Failed to get shared \"write\" lock");
            QemuTools.Result io = QemuTools.run(dir, "qemu-io", "-c", "write 0 512", "x.qcow2");
            assertThat(io.stdout() + io.stderr()).contains("Failed to get \"write\" lock");
            assertThat(QemuTools.run(dir, "qemu-img", "info", "-U", "x.qcow2").exitCode()).isZero();
        }
        assertThat(QemuTools.run(dir, "qemu-img", "info", "x.qcow2").exitCode()).isZero();
    }

    @Test
    void aBackingFileMayBeReadByOthersButNotWritten() throws Exception {
        image("base.qcow2");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        try (Image top = Images.openChain(dir, "top.qcow2", null, false)) {
            assertThat(QemuTools.run(dir, "qemu-img", "info", "base.qcow2").exitCode()).isZero();
            QemuTools.Result io = QemuTools.run(dir, "qemu-io", "-c", "write 0 512", "base.qcow2");
            assertThat(io.stdout() + io.stderr()).contains("Failed to get \"write\" lock");
            top.backing().close();
        }
    }

    @Test
    void livemonRefusesAnImageQemuHasOpenAsQemuWould() throws Exception {
        image("busy.qcow2");
        // qemu-io keeps the image open (read-write) while it waits for commands
        Process qemuIo = new ProcessBuilder("qemu-io", "-f", "qcow2", "busy.qcow2").directory(dir.toFile()).start();
        try {
            Thread.sleep(500);
            assertThatThrownBy(() -> Images.openChain(dir, "busy.qcow2", null, false))
                    .isInstanceOf(ImageException.class)
                    .hasMessage("Failed to get \"write\" lock\nIs another process using the image [busy.qcow2]?");
            assertThatThrownBy(() -> Images.openChain(dir, "busy.qcow2", null, true))
                    .hasMessage("Failed to get shared \"write\" lock\n"
                            + "Is another process using the image [busy.qcow2]?");
        } finally {
            try (OutputStream in = qemuIo.getOutputStream()) {
                in.write("quit\n".getBytes());
            }
            qemuIo.waitFor(10, TimeUnit.SECONDS);
            qemuIo.destroyForcibly();
        }
        try (Image img = Images.openChain(dir, "busy.qcow2", null, false)) {
            assertThat(img.isReadOnly()).isFalse();
        }
    }

    @Test
    void withinOneProcessTwoWritersConflictButReadersShare() throws Exception {
        image("a.qcow2");
        try (Image r1 = Images.open(dir, "a.qcow2", "qcow2", true);
             Image r2 = Images.open(dir, "a.qcow2", "qcow2", true)) {
            assertThatThrownBy(() -> Images.open(dir, "a.qcow2", "qcow2", false))
                    .hasMessageStartingWith("Failed to get \"write\" lock");
            assertThatThrownBy(() -> r1.setReadOnly(false)).hasMessageStartingWith("Failed to get \"write\" lock");
            assertThat(r2.isReadOnly()).isTrue();
        }
        try (Image w = Images.open(dir, "a.qcow2", "qcow2", false)) {
            assertThatThrownBy(() -> Images.open(dir, "a.qcow2", "qcow2", true))
                    .hasMessageStartingWith("Failed to get shared \"write\" lock");
            w.setReadOnly(true);
            try (Image r = Images.open(dir, "a.qcow2", "qcow2", true)) {
                assertThat(r.isReadOnly()).isTrue();
            }
            w.setReadOnly(false);
            // reopening swapped descriptors: the locks must still be there
            assertThat(QemuTools.run(dir, "qemu-img", "info", "a.qcow2").exitCode()).isNotZero();
        }
    }
}
