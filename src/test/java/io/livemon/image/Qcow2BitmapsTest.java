package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Persistent dirty bitmaps (qcow2 "bitmaps" extension) survive livemon and record its writes as QEMU records them:
 * bitmaps made by {@code qemu-img bitmap}, the same requests given to livemon and to {@code qemu-io} on a copy, the
 * bitmap bits read back from both files and compared, and the files checked with {@code qemu-img check/info}.
 */
class Qcow2BitmapsTest {
    static final long SIZE = 8L << 20;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
    }

    private void create(String file, String... bitmapArgs) {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", file, Long.toString(SIZE));
        for (String b : bitmapArgs) {
            // "[-g GRANULARITY] NAME"
            List<String> a = new ArrayList<>(List.of("bitmap", "--add"));
            List<String> words = List.of(b.split(" "));
            a.addAll(words.subList(0, words.size() - 1));
            a.add(file);
            a.add(words.get(words.size() - 1));
            QemuTools.qemuImg(dir, a.toArray(new String[0]));
        }
    }

    private String infoJson(String file) {
        return QemuTools.qemuImg(dir, "info", "-U", "--output=json", file).stdout().replaceAll("\\s+", "");
    }

    private Map<String, BitmapDump.Bitmap> bitmaps(String file) throws IOException {
        return BitmapDump.read(dir.resolve(file));
    }

    /** A seeded stream of write / write-zeroes / discard requests, unaligned ones included. */
    private record Op(int kind, long off, int len) {
        String qemuIo() {
            return switch (kind) {
                case 0 -> "write -P 0x5a " + off + " " + len;
                case 1 -> "write -z " + off + " " + len;
                default -> "discard " + off + " " + len;
            };
        }

        void apply(Image img) throws IOException {
            switch (kind) {
                case 0 -> {
                    byte[] b = new byte[len];
                    java.util.Arrays.fill(b, (byte) 0x5a);
                    img.write(off, b, 0, len);
                }
                case 1 -> img.writeZeroes(off, len);
                default -> img.discard(off, len);
            }
        }
    }

    private static List<Op> ops(long seed, int n) {
        Random rnd = new Random(seed);
        List<Op> r = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long off = rnd.nextLong(SIZE);
            int len = 1 + rnd.nextInt(rnd.nextBoolean() ? 3000 : 300_000);
            if (rnd.nextBoolean()) {
                off &= ~0xffffL;
                len = Math.max(65536, len & ~0xffff);
            }
            len = (int) Math.min(len, SIZE - off);
            r.add(new Op(rnd.nextInt(3), off, len));
        }
        return r;
    }

    @ParameterizedTest(name = "seed={0}")
    @ValueSource(longs = {1, 2, 3})
    void guestWritesAreRecordedAsQemuRecordsThem(long seed) throws Exception {
        create("lm.qcow2", "b64k", "-g 512 b512", "-g 1M b1m");
        Files.copy(dir.resolve("lm.qcow2"), dir.resolve("q.qcow2"));
        List<Op> ops = ops(seed, 40);
        Image img = Images.openChain(dir, "lm.qcow2", null, false);
        for (Op op : ops) {
            op.apply(img);
        }
        Images.closeChain(img);
        QemuTools.qemuIo(dir, "q.qcow2", ops.stream().map(Op::qemuIo).toArray(String[]::new));

        Map<String, BitmapDump.Bitmap> got = bitmaps("lm.qcow2");
        Map<String, BitmapDump.Bitmap> qemu = bitmaps("q.qcow2");
        assertThat(got.keySet()).containsExactly("b64k", "b512", "b1m");
        for (String name : got.keySet()) {
            BitmapDump.Bitmap b = got.get(name);
            BitSet expected = new BitSet();
            for (Op op : ops) {
                BitmapDump.touch(expected, b.granularityBits(), op.off(), op.len());
            }
            assertThat(b.dirty()).as("bitmap %s: the granules the requests touched", name).isEqualTo(expected);
            assertThat(b.dirty()).as("bitmap %s: same as qemu-io's", name).isEqualTo(qemu.get(name).dirty());
            assertThat(b.flags()).as("bitmap %s flags: auto, not in_use", name).isEqualTo(2);
        }
        QemuTools.assertClean(dir, "lm.qcow2");
        assertThat(infoJson("lm.qcow2")).contains("\"flags\":[\"auto\"],\"name\":\"b64k\",\"granularity\":65536")
                .doesNotContain("in-use");
        assertThat(QemuTools.compare(dir, "lm.qcow2", "q.qcow2").exitCode()).isZero();
        // QEMU's own tools accept them: convert --bitmaps copies them, and the copy has the same bits
        QemuTools.qemuImg(dir, "convert", "-O", "qcow2", "--bitmaps", "lm.qcow2", "conv.qcow2");
        assertThat(bitmaps("conv.qcow2").get("b512").dirty()).isEqualTo(got.get("b512").dirty());
    }

    @Test
    void bitmapsAreInUseOnDiskFromTheOpenUntilTheClose() throws Exception {
        create("a.qcow2", "b0");
        Image img = Images.openChain(dir, "a.qcow2", null, false);
        try {
            // before any write: a killed process must leave them visibly inconsistent, never silently stale
            assertThat(bitmaps("a.qcow2").get("b0").inUse()).isTrue();
            assertThat(BitmapDump.autoclear(dir.resolve("a.qcow2")) & 1).isEqualTo(1);
            img.write(3 << 20, new byte[100], 0, 100);
        } finally {
            Images.closeChain(img);
        }
        BitmapDump.Bitmap b = bitmaps("a.qcow2").get("b0");
        assertThat(b.inUse()).isFalse();
        assertThat(b.dirty().stream().boxed().toList()).containsExactly(48);
        assertThat(BitmapDump.autoclear(dir.resolve("a.qcow2"))).isEqualTo(1);
        QemuTools.assertClean(dir, "a.qcow2");
    }

    @Test
    void compressedWritesAreRecordedToo() throws Exception {
        create("a.qcow2", "b0");
        Image img = Images.openChain(dir, "a.qcow2", null, false);
        try {
            byte[] data = new byte[65536];
            java.util.Arrays.fill(data, (byte) 7);
            img.writeCompressed(2L << 20, data, 0, data.length); // what drive_backup -c writes into its target
        } finally {
            Images.closeChain(img);
        }
        assertThat(bitmaps("a.qcow2").get("b0").dirty().stream().boxed().toList()).containsExactly(32);
        QemuTools.assertClean(dir, "a.qcow2");
    }

    @Test
    void disabledBitmapIsKeptUnchanged() throws Exception {
        create("a.qcow2", "on", "off");
        QemuTools.qemuIo(dir, "a.qcow2", "write -P 1 1M 64k");
        QemuTools.qemuImg(dir, "bitmap", "--disable", "a.qcow2", "off");
        Image img = Images.openChain(dir, "a.qcow2", null, false);
        img.write(5L << 20, new byte[4096], 0, 4096);
        img.writeZeroes(0, 65536);
        img.discard(7L << 20, 65536);
        Images.closeChain(img);
        Map<String, BitmapDump.Bitmap> m = bitmaps("a.qcow2");
        assertThat(m.get("off").flags()).isZero();
        assertThat(m.get("off").dirty().stream().boxed().toList()).containsExactly(16);
        assertThat(m.get("on").flags()).isEqualTo(2);
        assertThat(m.get("on").dirty().stream().boxed().toList()).containsExactly(0, 16, 80, 112);
        QemuTools.assertClean(dir, "a.qcow2");
        assertThat(infoJson("a.qcow2")).contains("\"flags\":[],\"name\":\"off\"");
    }

    /** The child: args dir, file. Writes, reports, then waits to be killed. */
    public static void main(String[] args) throws Exception {
        Image img = Images.openChain(Path.of(args[0]), args[1], null, false);
        for (int i = 0; i < 64; i++) {
            img.write(i * 100_000L, new byte[5000], 0, 5000);
        }
        Files.writeString(Path.of(args[0]).resolve("started"), "1");
        Thread.sleep(600_000);
    }

    @ParameterizedTest(name = "lazy refcounts={0}")
    @ValueSource(booleans = {false, true})
    void killedProcessLeavesInconsistentBitmapsThatStayInconsistent(boolean lazy) throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=" + (lazy ? "on" : "off"),
                "k.qcow2", Long.toString(SIZE));
        QemuTools.qemuImg(dir, "bitmap", "--add", "k.qcow2", "b0");
        QemuTools.qemuIo(dir, "k.qcow2", "write -P 7 0 64k");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(List.of(java, "-cp", System.getProperty("java.class.path"),
                Qcow2BitmapsTest.class.getName(), dir.toString(), "k.qcow2"))
                .redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!Files.exists(dir.resolve("started")) && System.nanoTime() < deadline && p.isAlive()) {
                Thread.sleep(20);
            }
        } finally {
            p.destroyForcibly(); // SIGKILL
            p.waitFor(30, TimeUnit.SECONDS);
        }
        assertThat(Files.exists(dir.resolve("started"))).as(Files.readString(dir.resolve("child.log"))).isTrue();
        assertThat(infoJson("k.qcow2")).contains("\"flags\":[\"in-use\",\"auto\"],\"name\":\"b0\"");
        BitSet before = bitmaps("k.qcow2").get("b0").dirty();
        // the bits on disk are the stale ones from before the open: qemu-io's write only
        assertThat(before.stream().boxed().toList()).containsExactly(0);

        // livemon opens it again (repairing the refcounts of a lazy image): the bitmap stays in_use, untouched
        Image img = Images.openChain(dir, "k.qcow2", null, false);
        img.write(2L << 20, new byte[512], 0, 512);
        Images.closeChain(img);
        BitmapDump.Bitmap b = bitmaps("k.qcow2").get("b0");
        assertThat(b.inUse()).isTrue();
        assertThat(b.dirty()).isEqualTo(before);
        QemuTools.assertClean(dir, "k.qcow2");
        QemuTools.Result conv = QemuTools.run(dir, "qemu-img", "convert", "-O", "qcow2", "--bitmaps", "k.qcow2",
                "c.qcow2");
        assertThat(conv.exitCode()).isNotZero();
        assertThat(conv.stderr()).contains("Cannot copy inconsistent bitmap 'b0'");
    }

    /** Sets a field of the first directory entry of the bitmaps extension. */
    private void pokeDirectory(String file, int fieldOffset, byte[] value) throws IOException {
        try (FileChannel c = FileChannel.open(dir.resolve(file), StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer h = ByteBuffer.allocate(4096);
            c.read(h, 0);
            int pos = h.getInt(100);
            while (h.getInt(pos) != 0x23852875) {
                pos += 8 + ((h.getInt(pos + 4) + 7) & ~7);
            }
            c.write(ByteBuffer.wrap(value), h.getLong(pos + 24) + fieldOffset);
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"unknown flag, 12, 00000006", "unknown type, 16, 02"})
    void bitmapsLivemonCannotKeepRefuseTheReadWriteOpen(String what, int field, String hex) throws Exception {
        create("a.qcow2", "b0");
        pokeDirectory("a.qcow2", field, java.util.HexFormat.of().parseHex(hex));
        byte[] before = Files.readAllBytes(dir.resolve("a.qcow2"));
        assertThatThrownBy(() -> Images.openChain(dir, "a.qcow2", null, false))
                .isInstanceOf(ImageException.class)
                .hasMessageContaining("Bitmap 'b0' doesn't satisfy the constraints");
        assertThat(Files.readAllBytes(dir.resolve("a.qcow2"))).as("file untouched").isEqualTo(before);
        Images.closeChain(Images.openChain(dir, "a.qcow2", null, true)); // read-only (a backing file): fine
        assertThat(Files.readAllBytes(dir.resolve("a.qcow2"))).as("file untouched").isEqualTo(before);
    }

    @Test
    void unknownAutoclearBitsAreClearedButTheBitmapsBitIsKept() throws Exception {
        create("a.qcow2", "b0");
        try (FileChannel c = FileChannel.open(dir.resolve("a.qcow2"), StandardOpenOption.WRITE)) {
            c.write(ByteBuffer.allocate(8).putLong(0, 1L | (1L << 40)), 88);
        }
        Images.closeChain(Images.openChain(dir, "a.qcow2", null, false));
        assertThat(BitmapDump.autoclear(dir.resolve("a.qcow2"))).isEqualTo(1);
        assertThat(infoJson("a.qcow2")).contains("\"flags\":[\"auto\"],\"name\":\"b0\"");
        QemuTools.assertClean(dir, "a.qcow2");
    }

    @Test
    void reopenReadOnlyWritesTheBitmapsBackAndReadWriteTakesThemAgain() throws Exception {
        create("a.qcow2", "b0");
        Image img = Images.openChain(dir, "a.qcow2", null, false);
        try {
            img.write(0, new byte[10], 0, 10);
            img.setReadOnly(true);
            BitmapDump.Bitmap b = bitmaps("a.qcow2").get("b0");
            assertThat(b.inUse()).isFalse();
            assertThat(b.dirty().stream().boxed().toList()).containsExactly(0);
            assertThat(QemuTools.check(dir, "a.qcow2").exitCode()).isZero();
            img.setReadOnly(false);
            assertThat(bitmaps("a.qcow2").get("b0").inUse()).isTrue();
            img.writeZeroes(SIZE - 65536, 65536);
        } finally {
            Images.closeChain(img);
        }
        assertThat(bitmaps("a.qcow2").get("b0").dirty().stream().boxed().toList()).containsExactly(0, 127);
        QemuTools.assertClean(dir, "a.qcow2");
    }

    @Test
    void resizeKeepsTheBitmapsValid() throws Exception {
        create("a.qcow2", "b0");
        Image img = Images.openChain(dir, "a.qcow2", null, false);
        img.write(SIZE - 512, new byte[512], 0, 512);
        img.resize(SIZE * 4);
        img.write(SIZE * 3, new byte[512], 0, 512);
        Images.closeChain(img);
        QemuTools.assertClean(dir, "a.qcow2");
        assertThat(bitmaps("a.qcow2").get("b0").dirty().stream().boxed().toList()).containsExactly(127, 384);
        QemuTools.qemuImg(dir, "convert", "-O", "qcow2", "--bitmaps", "a.qcow2", "conv.qcow2");
    }
    @Test
    void backingFilesOpenedReadOnlyAreNotTouched() throws Exception {
        create("base.qcow2", "b0");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        byte[] before = Files.readAllBytes(dir.resolve("base.qcow2"));
        Image img = Images.openChain(dir, "top.qcow2", null, false);
        assertThat(Files.readAllBytes(dir.resolve("base.qcow2"))).isEqualTo(before);
        img.write(0, new byte[4096], 0, 4096);
        Images.closeChain(img);
        assertThat(Files.readAllBytes(dir.resolve("base.qcow2"))).isEqualTo(before);
    }

    @Test
    void version2ImageWithABitmapsExtensionIsRefusedReadWrite() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", Long.toString(SIZE));
        // a bitmaps extension right after the 72-byte version 2 header (a v2 header has no autoclear bit for it)
        try (FileChannel c = FileChannel.open(dir.resolve("v2.qcow2"), StandardOpenOption.WRITE)) {
            ByteBuffer e = ByteBuffer.allocate(40).putInt(0, 0x23852875).putInt(4, 24).putInt(8, 1)
                    .putLong(16, 32).putLong(24, 65536 * 3);
            c.write(e, 72);
        }
        byte[] before = Files.readAllBytes(dir.resolve("v2.qcow2"));
        assertThatThrownBy(() -> Images.openChain(dir, "v2.qcow2", null, false))
                .isInstanceOf(ImageException.class).hasMessageContaining("persistent dirty bitmaps");
        assertThat(Files.readAllBytes(dir.resolve("v2.qcow2"))).isEqualTo(before);
    }

    /**
     * Hostile bitmap directories and tables (seeded random bytes over them): a writable open either refuses with an
     * ImageException and leaves the file as it was, or works, and then the image livemon closes has no corruption.
     */
    @ParameterizedTest(name = "seed={0}")
    @ValueSource(longs = {11, 12, 13, 14, 15, 16})
    void hostileBitmapStructuresAreRefusedOrKept(long seed) throws Exception {
        Random rnd = new Random(seed);
        for (int round = 0; round < 8; round++) {
            String f = "h" + round + ".qcow2";
            create(f, "b0", "-g 512 b1");
            QemuTools.qemuIo(dir, f, "write -P 1 0 64k");
            long dirOff;
            try (FileChannel c = FileChannel.open(dir.resolve(f), StandardOpenOption.READ)) {
                ByteBuffer h = ByteBuffer.allocate(4096);
                c.read(h, 0);
                int pos = h.getInt(100);
                while (h.getInt(pos) != 0x23852875) {
                    pos += 8 + ((h.getInt(pos + 4) + 7) & ~7);
                }
                dirOff = h.getLong(pos + 24);
            }
            try (FileChannel c = FileChannel.open(dir.resolve(f), StandardOpenOption.WRITE)) {
                int n = 1 + rnd.nextInt(3);
                for (int i = 0; i < n; i++) {
                    byte[] junk = new byte[1 + rnd.nextInt(rnd.nextBoolean() ? 2 : 8)];
                    rnd.nextBytes(junk);
                    c.write(ByteBuffer.wrap(junk), dirOff + rnd.nextInt(64));
                }
            }
            byte[] before = Files.readAllBytes(dir.resolve(f));
            Image img;
            try {
                img = Images.openChain(dir, f, null, false);
            } catch (ImageException e) {
                assertThat(Files.readAllBytes(dir.resolve(f))).as("refused open leaves %s untouched", f)
                        .isEqualTo(before);
                continue;
            }
            img.write(65536, new byte[4096], 0, 4096);
            Images.closeChain(img);
            QemuTools.Result r = QemuTools.check(dir, f);
            assertThat(r.exitCode()).as(r.describe()).isIn(0, 3);
        }
    }
    /**
     * A directory whose table offset points at a guest data cluster (here one of zeroes, a valid-looking empty
     * table): the close would free the "old table", that is the guest's cluster, and reuse it. Refused instead.
     */
    @Test
    void aBitmapTableThatIsGuestDataIsRefused() throws Exception {
        create("a.qcow2", "b0");
        QemuTools.qemuIo(dir, "a.qcow2", "write -P 0 0 64k", "write -P 9 64k 64k");
        String map = QemuTools.qemuImg(dir, "map", "--output=json", "a.qcow2").stdout();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"start\": 0,.*?\"offset\": (\\d+)")
                .matcher(map);
        assertThat(m.find()).as(map).isTrue();
        long data = Long.parseLong(m.group(1));
        pokeDirectory("a.qcow2", 0, ByteBuffer.allocate(8).putLong(0, data).array());
        byte[] before = Files.readAllBytes(dir.resolve("a.qcow2"));
        assertThatThrownBy(() -> Images.openChain(dir, "a.qcow2", null, false))
                .isInstanceOf(ImageException.class)
                .hasMessageContaining("bitmap 'b0' uses the cluster at 0x" + Long.toHexString(data));
        assertThat(Files.readAllBytes(dir.resolve("a.qcow2"))).isEqualTo(before);
    }
    /** info block -v / query-named-block-nodes list the bitmaps as qemu-img info does (QEMU reads the directory). */
    @Test
    void bitmapInfoListsTheDirectoryAsQemuImgInfoDoes() throws Exception {
        create("a.qcow2", "zz", "-g 1M kk");
        QemuTools.qemuImg(dir, "bitmap", "--disable", "a.qcow2", "kk");
        Image ro = Images.openChain(dir, "a.qcow2", null, true);
        assertThat(ro.bitmapInfo()).containsExactly(new BitmapInfo("zz", 65536, List.of("auto")),
                new BitmapInfo("kk", 1 << 20, List.of()));
        Images.closeChain(ro);
        Image rw = Images.openChain(dir, "a.qcow2", null, false);
        assertThat(rw.bitmapInfo()).containsExactly(new BitmapInfo("zz", 65536, List.of("in-use", "auto")),
                new BitmapInfo("kk", 1 << 20, List.of("in-use")));
        assertThat(infoJson("a.qcow2")).contains(
                "{\"flags\":[\"in-use\",\"auto\"],\"name\":\"zz\",\"granularity\":65536}",
                "{\"flags\":[\"in-use\"],\"name\":\"kk\",\"granularity\":1048576}");
        Images.closeChain(rw);
    }
}
