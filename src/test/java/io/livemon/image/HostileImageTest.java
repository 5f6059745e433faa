package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Damaged or unsupported images fail with a clean ImageException and are never modified by a failing open. */
class HostileImageTest {
    @TempDir
    Path dir;

    private interface Patch {
        void apply(RandomAccessFile f) throws IOException;
    }

    private Path image(String name, Patch patch) throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", name, "4M");
        QemuTools.qemuIo(dir, name, "write -P 0x11 0 128k");
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve(name).toFile(), "rw")) {
            patch.apply(f);
        }
        return dir.resolve(name);
    }

    private void assertOpenFails(String name, Patch patch, Consumer<String> messageCheck) throws IOException {
        Path p = image(name, patch);
        byte[] before = Files.readAllBytes(p);
        for (boolean ro : new boolean[] {false, true}) {
            assertThatThrownBy(() -> Images.openChain(dir, name, null, ro))
                    .isInstanceOf(ImageException.class)
                    .satisfies(e -> messageCheck.accept(e.getMessage()));
        }
        assertThat(Files.readAllBytes(p)).as("a failing open must not write").isEqualTo(before);
    }

    private static Consumer<String> is(String msg) {
        return m -> assertThat(m).isEqualTo(msg);
    }

    private static Consumer<String> has(String... parts) {
        return m -> assertThat(m).contains(parts);
    }

    @Test
    void headerProblems() throws IOException {
        assertThatThrownBy(() -> {
            image("m.img", f -> f.writeInt(0x12345678));
            Images.openChain(dir, "m.img", "qcow2", false);
        }).hasMessage("Image is not in qcow2 format");
        assertOpenFails("v.img", f -> { f.seek(4); f.writeInt(9); }, is("Unsupported qcow2 version 9"));
        assertOpenFails("cb.img", f -> { f.seek(20); f.writeInt(30); }, is("Unsupported cluster size: 2^30"));
        assertOpenFails("cb8.img", f -> { f.seek(20); f.writeInt(8); }, is("Unsupported cluster size: 2^8"));
        assertOpenFails("l1.img", f -> { f.seek(36); f.writeInt(0x80000000); }, is("Active L1 table too large"));
        assertOpenFails("l1eof.img", f -> { f.seek(40); f.writeLong(1L << 40); }, has("Invalid L1 table offset"));
        assertOpenFails("l1hdr.img", f -> { f.seek(40); f.writeLong(0); }, has("Invalid L1 table offset"));
        assertOpenFails("rt.img", f -> { f.seek(48); f.writeLong(1L << 40); },
                has("Invalid reference count table offset"));
        assertOpenFails("rtbig.img", f -> { f.seek(56); f.writeInt(0x7fffffff); },
                is("Reference count table too large"));
        assertOpenFails("bn.img", f -> { f.seek(8); f.writeLong(0x200); f.writeInt(2000); },
                is("Backing file name too long"));
        assertOpenFails("ro.img", f -> { f.seek(96); f.writeInt(7); }, has("may not exceed 64 bits"));
    }

    @Test
    void unsupportedFeaturesAreNamed() throws IOException {
        assertOpenFails("z.img", f -> { f.seek(72); f.writeLong(8); }, has("compression type"));
        assertOpenFails("x.img", f -> { f.seek(72); f.writeLong(16); }, has("extended L2"));
        assertOpenFails("d.img", f -> { f.seek(72); f.writeLong(4); }, has("external data file"));
        assertOpenFails("u.img", f -> { f.seek(72); f.writeLong(1L << 40); }, has("Unknown incompatible feature"));
        assertOpenFails("e.img", f -> { f.seek(32); f.writeInt(2); }, has("encryption"));
    }

    @Test
    void corruptBitAllowsReadOnlyOnly() throws IOException {
        Path p = image("c.img", f -> { f.seek(72); f.writeLong(2); });
        byte[] before = Files.readAllBytes(p);
        assertThatThrownBy(() -> Images.openChain(dir, "c.img", null, false))
                .hasMessage("qcow2: Image is corrupt; cannot be opened read/write");
        try (Image img = Images.openChain(dir, "c.img", null, true)) {
            byte[] b = new byte[4];
            img.read(0, b, 0, 4);
            assertThat(b).containsOnly(0x11);
            assertThat(img.info().corrupt()).isTrue();
        }
        assertThat(Files.readAllBytes(p)).isEqualTo(before);
    }

    /** Offset of the first L2 table (from L1 entry 0). */
    private static long l2Offset(RandomAccessFile f) throws IOException {
        f.seek(40);
        long l1 = f.readLong();
        f.seek(l1);
        return f.readLong() & Qcow2Format.OFFSET_MASK;
    }

    @Test
    void badL2EntriesFailAtReadTime() throws IOException {
        image("out.img", f -> {
            long l2 = l2Offset(f);
            f.seek(l2 + 8);
            f.writeLong(Qcow2Format.OFLAG_COPIED | (1L << 40));
        });
        image("mis.img", f -> {
            long l2 = l2Offset(f);
            f.seek(l2);
            long e = f.readLong();
            f.seek(l2);
            f.writeLong(e + 512);
        });
        image("l2out.img", f -> {
            f.seek(40);
            long l1 = f.readLong();
            f.seek(l1);
            f.writeLong(Qcow2Format.OFLAG_COPIED | (1L << 40));
        });
        image("comp.img", f -> {
            long l2 = l2Offset(f);
            f.seek(l2);
            f.writeLong(Qcow2Format.OFLAG_COMPRESSED | (1L << 39));
        });
        for (String name : new String[] {"out.img", "mis.img", "l2out.img", "comp.img"}) {
            byte[] before = Files.readAllBytes(dir.resolve(name));
            try (Image img = Images.openChain(dir, name, null, false)) {
                byte[] b = new byte[128 << 10];
                assertThatThrownBy(() -> img.read(0, b, 0, b.length))
                        .as(name).isInstanceOf(ImageException.class).hasMessageContaining(name)
                        .hasMessageContaining("0x");
                assertThatThrownBy(() -> img.write(0, b, 0, b.length)).as(name).isInstanceOf(ImageException.class);
            }
            if (!name.equals("mis.img") && !name.equals("out.img") && !name.equals("comp.img")) {
                assertThat(Files.readAllBytes(dir.resolve(name))).as(name).isEqualTo(before);
            }
        }
    }

    @Test
    void dirtyImageIsRepairedOnWritableOpen() throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4096", "d.img", "8M");
        QemuTools.qemuIo(dir, "d.img", "write -P 0x21 0 1M", "write -P 0x22 5M 100k");
        QemuTools.toRaw(dir, "d.img", "d.raw");
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("d.img").toFile(), "rw")) {
            f.seek(48);
            long rt = f.readLong();
            f.seek(rt);
            long rb = f.readLong();
            f.seek(rb + 20);
            f.write(new byte[200]); // lose refcounts of in-use clusters, as after a crash with lazy refcounts
            f.seek(72);
            f.writeLong(1); // dirty
        }
        assertThat(QemuTools.check(dir, "d.img").exitCode()).isNotZero();
        try (Image img = Images.openChain(dir, "d.img", null, true)) {
            assertThat(img.info().dirty()).isTrue(); // read-only open leaves it alone
        }
        try (Image img = Images.openChain(dir, "d.img", null, false)) {
            assertThat(img.info().dirty()).isFalse();
            img.write(2L << 20, new byte[4096], 0, 4096);
        }
        QemuTools.assertClean(dir, "d.img");
        QemuTools.qemuIoFmt(dir, "raw", "d.raw", "write -z 2M 4k");
        assertThat(QemuTools.run(dir, "qemu-img", "compare", "-F", "raw", "d.img", "d.raw").exitCode()).isZero();
    }

    @Test
    void lazyRefcountsSetAndClearDirtyBit() throws IOException {
        Images.createQcow2(dir, "l.img", 1 << 20, Qcow2CreateOptions.defaults().withLazyRefcounts(true));
        Image img = Images.openChain(dir, "l.img", null, false);
        try {
            img.write(0, new byte[] {1}, 0, 1);
            assertThat(img.info().dirty()).isTrue();
            assertThat(img.info().lazyRefcounts()).isTrue();
        } finally {
            img.close();
        }
        assertThat(QemuTools.infoJson(dir, "l.img")).contains("\"dirty-flag\": false");
        QemuTools.assertClean(dir, "l.img");
    }

    @Test
    void internalSnapshotsAreKept() throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "s.img", "4M");
        QemuTools.qemuIo(dir, "s.img", "write -P 0x11 0 4M");
        QemuTools.qemuImg(dir, "snapshot", "-c", "s1", "s.img");
        QemuTools.toRaw(dir, "s.img", "before.raw");
        try (Image img = Images.openChain(dir, "s.img", null, false)) {
            img.write(1000, new byte[70000], 0, 70000);
            img.writeZeroes(1 << 20, 1 << 20);
            img.discard(3 << 20, 1 << 20);
            img.write(4000000, new byte[] {5}, 0, 1);
        }
        QemuTools.assertClean(dir, "s.img");
        QemuTools.qemuImg(dir, "convert", "-O", "raw", "-l", "snapshot.name=s1", "s.img", "snap.raw");
        assertThat(Files.readAllBytes(dir.resolve("snap.raw"))).isEqualTo(Files.readAllBytes(dir.resolve("before.raw")));
        // the same image with the dirty bit: the repair must count the snapshot's references
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("s.img").toFile(), "rw")) {
            f.seek(72);
            f.writeLong(1);
        }
        try (Image img = Images.openChain(dir, "s.img", null, false)) {
            assertThat(img.info().dirty()).isFalse();
        }
        QemuTools.assertClean(dir, "s.img");
    }
}
