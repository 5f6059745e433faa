package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** Images written by qemu-img / qemu-io must read back byte-identical through livemon. */
class Qcow2InteropTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "cluster_size={0} compat={1} refcount_bits={2}")
    @CsvSource({
        "512, 1.1, 16",
        "65536, 1.1, 16",
        "2097152, 1.1, 16",
        "65536, 0.10, 16",
        "4096, 1.1, 1",
        "4096, 1.1, 64",
        "1024, 1.1, 8",
    })
    void readsQemuWrittenImage(int clusterSize, String compat, int refcountBits) throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o",
                "cluster_size=" + clusterSize + ",compat=" + compat + ",refcount_bits=" + refcountBits,
                "a.qcow2", "16M");
        QemuTools.qemuIo(dir, "a.qcow2",
                "write -P 0x11 0 100k", "write -P 0x22 1000 3000", "write -P 0x33 5M 1M",
                "write -z 5200k 200k", "discard 5500k 300k", "write -P 0x44 16380k 4k",
                "write -z 8M 2M", "write -P 0x55 9M 7k");
        TestSupport.assertSameAsQemu(dir, "a.qcow2");
        Image img = Images.open(dir, "a.qcow2", null, true);
        try {
            ImageInfo info = img.info();
            assertThat(info.clusterSize()).isEqualTo(clusterSize);
            assertThat(info.compat()).isEqualTo(compat);
            assertThat(info.refcountBits()).isEqualTo(refcountBits);
        } finally {
            img.close();
        }
    }

    @Test
    void readsCompressedImage() throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "src.qcow2", "8M");
        QemuTools.qemuIo(dir, "src.qcow2", "write -P 0x61 0 1M", "write -P 0x62 3M 300k", "write -P 0x63 7M 1M");
        QemuTools.qemuImg(dir, "convert", "-c", "-O", "qcow2", "src.qcow2", "c.qcow2");
        TestSupport.assertSameAsQemu(dir, "c.qcow2");
        QemuTools.qemuImg(dir, "convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", "src.qcow2", "c4k.qcow2");
        TestSupport.assertSameAsQemu(dir, "c4k.qcow2");
    }

    @Test
    void overwritesCompressedClusters() throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "src.qcow2", "4M");
        QemuTools.qemuIo(dir, "src.qcow2", "write -P 0x61 0 4M");
        QemuTools.qemuImg(dir, "convert", "-c", "-O", "qcow2", "src.qcow2", "c.qcow2");
        try (Image img = Images.open(dir, "c.qcow2", null, false)) {
            img.write(1000, new byte[5000], 0, 5000);
            img.writeZeroes(1 << 20, 1 << 20);
            img.discard(3 << 20, 65536);
        }
        QemuTools.assertClean(dir, "c.qcow2");
        QemuTools.qemuIo(dir, "src.qcow2", "write -z 1000 5000", "write -z 1M 1M", "write -z 3M 64k");
        assertThat(QemuTools.compare(dir, "src.qcow2", "c.qcow2").exitCode()).isZero();
    }

    @ParameterizedTest(name = "depth {0}")
    @CsvSource({"1", "2", "5", "8"})
    void readsChains(int depth) throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", "cluster_size=4096", "l0.qcow2", "4M");
        QemuTools.qemuIo(dir, "l0.qcow2", "write -P 0x10 0 4M");
        for (int i = 1; i <= depth; i++) {
            // layers of different sizes and cluster sizes
            String size = (i % 3 == 0) ? "3M" : "4M";
            QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", "cluster_size=" + (512 << (i % 4)),
                    "-b", "l" + (i - 1) + ".qcow2", "-F", "qcow2", "l" + i + ".qcow2", size);
            QemuTools.qemuIo(dir, "l" + i + ".qcow2", "write -P " + (0x20 + i) + " " + (i * 300) + "k 100k",
                    "write -z " + (i * 123) + "k 5k", "discard " + (i * 400) + "k 64k");
        }
        TestSupport.assertSameAsQemu(dir, "l" + depth + ".qcow2");
    }

    @Test
    void rawBaseUnderQcow2Overlays() throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "raw", "base.raw", "2M");
        QemuTools.qemuIoFmt(dir, "raw", "base.raw", "write -P 0x77 0 2M");
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "o1.qcow2", "3M");
        QemuTools.qemuIo(dir, "o1.qcow2", "write -P 0x78 64k 64k", "write -P 0x79 1984k 128k");
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-b", "o1.qcow2", "-F", "qcow2", "o2.qcow2");
        QemuTools.qemuIo(dir, "o2.qcow2", "write -P 0x7a 100k 10k");
        TestSupport.assertSameAsQemu(dir, "o2.qcow2");
        Image top = Images.openChain(dir, "o2.qcow2", null, true);
        try {
            assertThat(top.backing().format()).isEqualTo("qcow2");
            assertThat(top.backing().backing().format()).isEqualTo("raw");
            assertThat(top.backing().backing().filename()).isEqualTo("base.raw");
        } finally {
            Images.closeChain(top);
        }
    }
}
