package io.livemon.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.livemon.testsupport.QemuTools;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The raw driver against qemu-io and qemu-img on the same file (QEMU's block/raw-format.c over file-posix.c). */
class RawImageTest {
    @TempDir
    Path dir;

    private static byte[] filled(int len, int value) {
        byte[] b = new byte[len];
        Arrays.fill(b, (byte) value);
        return b;
    }

    @Test
    void whatOneSideWritesTheOtherReads() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "r.raw", "1M");
        QemuTools.qemuIoFmt(dir, "raw", "r.raw", "write -P 0x11 4096 8192").orThrow();
        try (RawImage img = RawImage.open(dir.resolve("r.raw"), "r.raw", false)) {
            assertThat(img.size()).isEqualTo(1 << 20);
            byte[] b = new byte[8192];
            img.read(4096, b, 0, b.length);
            assertThat(b).isEqualTo(filled(8192, 0x11));
            img.write(65536 + 17, filled(1000, 0x22), 0, 1000); // unaligned: raw has no clusters
            img.writeZeroes(4096, 4096);
            assertThat(img.highestWriteEnd()).isEqualTo(65536 + 17 + 1000);
        }
        QemuTools.qemuIoFmt(dir, "raw", "r.raw", "read -P 0x22 65553 1000", "read -P 0 4096 4096",
                "read -P 0x11 8192 4096").orThrow();
    }

    @Test
    void aDirectBufferIsFilledAndAdvanced() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "r.raw", "64k");
        QemuTools.qemuIoFmt(dir, "raw", "r.raw", "write -P 0x5a 0 64k").orThrow();
        try (RawImage img = RawImage.open(dir.resolve("r.raw"), "r.raw", true)) {
            ByteBuffer dst = ByteBuffer.allocateDirect(4096);
            img.read(1024, dst);
            assertThat(dst.position()).isEqualTo(4096);
            dst.flip();
            byte[] got = new byte[4096];
            dst.get(got);
            assertThat(got).isEqualTo(filled(4096, 0x5a));
        }
    }

    @Test
    void refusalsCarryQemusTexts() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "r.raw", "64k");
        try (RawImage img = RawImage.open(dir.resolve("r.raw"), "r.raw", true)) {
            assertThatThrownBy(() -> img.write(0, new byte[1], 0, 1)).hasMessage("Block node is read-only");
            assertThatThrownBy(() -> img.read(65535, new byte[2], 0, 2)).isInstanceOf(ImageException.class)
                    .hasMessageStartingWith("Request out of range for 'r.raw'");
            assertThatThrownBy(() -> img.changeBackingFile(null, "x", "raw"))
                    .hasMessageContaining("raw images have no backing file");
        }
    }

    @Test
    void resizeAndReopenKeepTheData() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "r.raw", "64k");
        try (RawImage img = RawImage.open(dir.resolve("r.raw"), "r.raw", false)) {
            img.write(0, filled(512, 0x33), 0, 512);
            img.resize(1 << 20);
            assertThat(img.size()).isEqualTo(1 << 20);
            img.setReadOnly(true);
            assertThat(img.isReadOnly()).isTrue();
            img.setReadOnly(false);
            img.write(1024, filled(512, 0x44), 0, 512);
            img.resize(2048);
        }
        assertThat(Files.size(dir.resolve("r.raw"))).isEqualTo(2048);
        QemuTools.qemuIoFmt(dir, "raw", "r.raw", "read -P 0x33 0 512", "read -P 0 512 512",
                "read -P 0x44 1024 512").orThrow();
    }

    @Test
    void everyByteIsDataForBlockStatusAndAllocation() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "r.raw", "64k");
        try (RawImage img = RawImage.open(dir.resolve("r.raw"), "r.raw", true)) {
            assertThat(img.blockStatus(4096, 1 << 20)).isEqualTo(new BlockStatus(BlockStatus.Kind.DATA, 61440));
            assertThat(img.isAllocatedAbove(0, 4096, null).allocated()).isTrue();
            assertThat(img.isAllocatedAbove(0, 4096, img).allocated()).isFalse();
        }
    }
}
