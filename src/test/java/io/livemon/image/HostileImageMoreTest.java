package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Hostile images not covered by {@link HostileImageTest}: refcount overflow, compressed descriptors out of range,
 * a refcount table over the header, an L2 entry pointing at metadata, a backing name just over the limit, and the
 * 2^31-entry L1 table failing fast without allocating.
 */
class HostileImageMoreTest {
    @TempDir
    Path dir;

    private interface Patch {
        void apply(RandomAccessFile f) throws IOException;
    }

    private void make(String name, String opts, Patch patch) throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", opts, name, "4M");
        QemuTools.qemuIo(dir, name, "write -P 0x11 0 16k");
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve(name).toFile(), "rw")) {
            patch.apply(f);
        }
    }

    private static long l2Offset(RandomAccessFile f) throws IOException {
        f.seek(40);
        long l1 = f.readLong();
        f.seek(l1);
        return f.readLong() & Qcow2Format.OFFSET_MASK;
    }

    @Test
    void refcountOverflowIsAnErrorNotAWrap() throws IOException {
        // refcount_bits=1: a cluster referenced by two L2 entries needs refcount 2. With the dirty bit set the
        // writable open recounts and must refuse instead of storing 2 & 1 = 0 (which would free a used cluster).
        make("o.img", "cluster_size=4096,refcount_bits=1,lazy_refcounts=on", f -> {
            long l2 = l2Offset(f);
            f.seek(l2);
            long e0 = f.readLong();
            f.seek(l2 + 8);
            f.writeLong(e0); // guest cluster 1 shares guest cluster 0's host cluster
            f.seek(72);
            f.writeLong(Qcow2Format.INCOMPAT_DIRTY);
        });
        byte[] before = Files.readAllBytes(dir.resolve("o.img"));
        assertThatThrownBy(() -> Images.openChain(dir, "o.img", null, false))
                .isInstanceOf(ImageException.class).hasMessageContaining("o.img")
                .hasMessageContaining("refcount overflow");
        assertThat(Files.readAllBytes(dir.resolve("o.img"))).as("a failing open must not write").isEqualTo(before);
        try (Image img = Images.openChain(dir, "o.img", null, true)) { // read-only still works
            byte[] b = new byte[8192];
            img.read(0, b, 0, b.length);
            assertThat(b).containsOnly(0x11);
        }
    }

    @Test
    void compressedDescriptorsOutOfRange() throws IOException {
        make("ch.img", "cluster_size=4096", f -> { // compressed data "in the header"
            f.seek(l2Offset(f));
            f.writeLong(Qcow2Format.OFLAG_COMPRESSED | 100);
        });
        make("ce.img", "cluster_size=4096", f -> { // starts inside the file, runs far past its end
            long len = f.length();
            f.seek(l2Offset(f));
            f.writeLong(Qcow2Format.OFLAG_COMPRESSED | (15L << 62 - 4) | (len - 100));
        });
        for (String n : new String[] {"ch.img", "ce.img"}) {
            byte[] before = Files.readAllBytes(dir.resolve(n));
            try (Image img = Images.openChain(dir, n, null, true)) {
                byte[] b = new byte[4096];
                assertThatThrownBy(() -> img.read(0, b, 0, b.length)).as(n).isInstanceOf(ImageException.class)
                        .hasMessageContaining(n).hasMessageContaining("compressed cluster");
            }
            assertThat(Files.readAllBytes(dir.resolve(n))).isEqualTo(before);
        }
    }

    @Test
    void virtualSizesBeyondQemusLimitAreRefusedAsQemuDoes() throws IOException {
        // QEMU 7.2's answers for the same headers (qemu-img info): the L1 index of the disk's end must fit an int;
        // 2^63 - 512 once wrapped round in livemon's arithmetic and opened a disk a job would walk for ever.
        long[] sizes = {Long.MAX_VALUE - 511, 1L << 62, 1L << 60, 1L << 56};
        String[] qemu = {"Image is too big", "Image is too big", "Image is too big", "L1 table is too small"};
        for (int i = 0; i < sizes.length; i++) {
            long size = sizes[i];
            String name = "big" + i + ".img";
            make(name, "cluster_size=65536", f -> { f.seek(24); f.writeLong(size); });
            assertThat(QemuTools.run(dir, "qemu-img", "info", name).stderr()).contains(qemu[i]);
            for (boolean ro : new boolean[] {true, false}) {
                assertThatThrownBy(() -> Images.openChain(dir, name, null, ro)).as("%d", size)
                        .isInstanceOf(ImageException.class).hasMessage(qemu[i]);
            }
        }
    }

    @Test
    void refcountTableOverTheHeader() throws IOException {
        make("rt0.img", "cluster_size=65536", f -> { f.seek(48); f.writeLong(0); });
        byte[] before = Files.readAllBytes(dir.resolve("rt0.img"));
        for (boolean ro : new boolean[] {true, false}) {
            assertThatThrownBy(() -> Images.openChain(dir, "rt0.img", null, ro)).isInstanceOf(ImageException.class)
                    .hasMessageContaining("Invalid reference count table offset");
        }
        assertThat(Files.readAllBytes(dir.resolve("rt0.img"))).isEqualTo(before);
    }

    @Test
    void l2EntryPointingAtMetadataIsNotWrittenThrough() throws IOException {
        // guest cluster 1's L2 entry points at the L1 table (refcount 1, COPIED): an in-place guest write there
        // would overwrite the L1 table; QEMU refuses such writes ("Preventing invalid write on metadata")
        long[] l1Off = new long[1];
        make("ov.img", "cluster_size=4096", f -> {
            f.seek(40);
            l1Off[0] = f.readLong();
            f.seek(l2Offset(f) + 8);
            f.writeLong(Qcow2Format.OFLAG_COPIED | l1Off[0]);
        });
        byte[] l1Before = Arrays.copyOfRange(Files.readAllBytes(dir.resolve("ov.img")), (int) l1Off[0],
                (int) l1Off[0] + 4096);
        try (Image img = Images.openChain(dir, "ov.img", null, false)) {
            byte[] b = new byte[512];
            Arrays.fill(b, (byte) 0x66);
            assertThatThrownBy(() -> img.write(4096, b, 0, b.length)).isInstanceOf(ImageException.class)
                    .hasMessageContaining("ov.img").hasMessageContaining("metadata");
        }
        assertThat(Arrays.copyOfRange(Files.readAllBytes(dir.resolve("ov.img")), (int) l1Off[0],
                (int) l1Off[0] + 4096)).as("the L1 table").isEqualTo(l1Before);
    }

    @Test
    void backingNameOf1024BytesIsRefused() throws IOException {
        make("bn.img", "cluster_size=65536", f -> {
            byte[] name = new byte[1024];
            Arrays.fill(name, (byte) 'a');
            f.seek(4096);
            f.write(name);
            f.seek(8);
            f.writeLong(4096);
            f.writeInt(1024);
        });
        assertThatThrownBy(() -> Images.openChain(dir, "bn.img", null, true))
                .isInstanceOf(ImageException.class).hasMessage("Backing file name too long");
    }

    @Test
    void hugeL1FailsFastWithoutAllocating() throws IOException {
        make("l1.img", "cluster_size=65536", f -> { f.seek(36); f.writeInt(0x80000000); });
        com.sun.management.ThreadMXBean mx =
                (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long before = mx.getCurrentThreadAllocatedBytes();
        long t0 = System.nanoTime();
        assertThatThrownBy(() -> Images.openChain(dir, "l1.img", null, true))
                .isInstanceOf(ImageException.class).hasMessage("Active L1 table too large");
        assertThat(mx.getCurrentThreadAllocatedBytes() - before).as("bytes allocated").isLessThan(4L << 20);
        assertThat(System.nanoTime() - t0).as("ns").isLessThan(2_000_000_000L);
    }
}
