package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Seeded random corruption of qcow2 METADATA (header and header extensions, backing name, L1, L2 tables, refcount
 * table and refcount blocks, located by parsing the header) of valid images made by qemu-img: several cluster
 * sizes, v2 and v3, refcount_bits 1/8/16/64, a backing file, compressed clusters, lazy refcounts. Each case opens
 * the damaged copy read-only and reads the whole guest view (and, for every 8th case, opens a second copy writable
 * and writes one cluster). Accepted outcomes:
 * <ul>
 *   <li>a clean {@link IOException} (ImageException) with a message, and a failing open leaves the file unchanged;</li>
 *   <li>data: when only refcount structures were damaged, the original content (reads never use refcounts); for a
 *   sample of cases (about 300), exactly what {@code qemu-img convert -O raw} reads from the same damaged file
 *   when qemu-img succeeds.</li>
 * </ul>
 * Never a RuntimeException, an Error (OutOfMemoryError), a hang (per-case timeout) or an allocation explosion
 * (per-case allocated bytes are bounded; an L1 size of 2^31 must fail fast). A read-only open never changes the
 * file. Failures print the seed and case number: replay one case with
 * {@code -Dlivemon.corruption.seed=S -Dlivemon.corruption.case=N}; {@code -Dlivemon.corruption.cases=} sets the count.
 */
class CorruptionFuzzTest {
    private static final long SEED = Long.getLong("livemon.corruption.seed", 20240607L);
    private static final int CASES = Integer.getInteger("livemon.corruption.cases", 10_000);
    private static final int ONLY_CASE = Integer.getInteger("livemon.corruption.case", -1);
    private static final int QEMU_SAMPLES = 300;
    /** Cases whose data differs from the original are compared with qemu-img too, up to this many. */
    private static final int MAX_QEMU_CHANGED = 250;
    private static final java.util.concurrent.atomic.AtomicInteger qemuRefusedChanged = new java.util.concurrent.atomic.AtomicInteger();
    private static final java.util.concurrent.atomic.AtomicInteger qemuChanged = new java.util.concurrent.atomic.AtomicInteger();
    /** The most one case may allocate: the engine's own caps (32 MiB L1, 8 MiB refcount table) plus reading. */
    private static final long MAX_ALLOC = 256L << 20;

    @TempDir
    static Path dir;

    private static final List<Sample> SAMPLES = new ArrayList<>();
    private static ExecutorService worker;

    /** A valid image, its bytes, its guest content and where its metadata lives. */
    private record Sample(String name, byte[] bytes, byte[] content, Layout layout) {
    }

    private record Region(String kind, long start, long end) {
    }

    private record Layout(int cs, long fileSize, List<Region> regions, long[] headerFields) {
    }

    @BeforeAll
    static void makeImages() throws IOException {
        worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "corruption-case");
            t.setDaemon(true);
            return t;
        });
        // v3, 512-byte clusters, 16-bit refcounts, data + zero clusters + discards
        img("a.qcow2", "-o", "cluster_size=512,refcount_bits=16", "768k",
                "write -P 0x11 0 100k", "write -P 0x12 300k 5000", "write -z 40k 8k", "discard 60k 4k",
                "write -P 0x13 700k 68k");
        // refcount_bits=1, 4 KiB clusters
        img("b.qcow2", "-o", "cluster_size=4096,refcount_bits=1", "1M", "write -P 0x21 0 200k",
                "write -P 0x22 600k 300k", "write -z 100k 64k");
        // 64 KiB clusters, 64-bit refcounts, a second L2 table (an L2 covers 512 MiB: use a 1.5 GiB image? no:
        // keep it small and sparse, the read is bounded by the virtual size)
        img("c.qcow2", "-o", "cluster_size=65536,refcount_bits=64", "2M", "write -P 0x31 0 300k",
                "write -P 0x32 1M 70k", "write -z 1536k 128k");
        // v2 (compat=0.10)
        img("d.qcow2", "-o", "compat=0.10,cluster_size=4096", "1M", "write -P 0x41 0 128k",
                "write -P 0x42 512k 64k", "discard 64k 16k");
        // refcount_bits=8 with lazy refcounts
        img("g.qcow2", "-o", "cluster_size=2048,refcount_bits=8,lazy_refcounts=on", "512k",
                "write -P 0x71 0 64k", "write -P 0x72 200k 10k");
        // compressed clusters
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", "cluster_size=4096", "src.qcow2", "512k");
        QemuTools.qemuIo(dir, "src.qcow2", "write -P 0x51 0 200k", "write -P 0x52 300k 100k");
        QemuTools.qemuImg(dir, "convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", "src.qcow2", "e.qcow2");
        QemuTools.qemuIo(dir, "e.qcow2", "write -P 0x53 40k 4k"); // one uncompressed cluster among them
        add("e.qcow2");
        // an overlay (with the backing format extension) on a qcow2 base
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", "cluster_size=4096", "base.qcow2", "768k");
        QemuTools.qemuIo(dir, "base.qcow2", "write -P 0x61 0 768k");
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", "cluster_size=1024", "-b", "base.qcow2", "-F",
                "qcow2", "f.qcow2", "1M");
        QemuTools.qemuIo(dir, "f.qcow2", "write -P 0x62 1000 3000", "write -z 100k 8k", "write -P 0x63 700k 200k");
        add("f.qcow2");
    }

    @AfterAll
    static void stop() {
        worker.shutdownNow();
    }

    private static void img(String name, String opt, String opts, String size, String... io) throws IOException {
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", opt, opts, name, size);
        QemuTools.qemuIo(dir, name, io);
        add(name);
    }

    private static void add(String name) throws IOException {
        QemuTools.toRaw(dir, name, name + ".raw");
        byte[] bytes = Files.readAllBytes(dir.resolve(name));
        SAMPLES.add(new Sample(name, bytes, Files.readAllBytes(dir.resolve(name + ".raw")), layout(bytes)));
    }

    /** Parses the header (independently of the engine) to find every metadata structure. */
    static Layout layout(byte[] f) {
        ByteBuffer b = ByteBuffer.wrap(f);
        int version = b.getInt(4);
        long backingOff = b.getLong(8);
        int backingLen = b.getInt(16);
        int cs = 1 << b.getInt(20);
        int l1Size = b.getInt(36);
        long l1Off = b.getLong(40);
        long rtOff = b.getLong(48);
        int rtClusters = b.getInt(56);
        int hlen = version == 3 ? b.getInt(100) : 72;
        int order = version == 3 ? b.getInt(96) : 4;
        int pos = hlen;
        List<Long> fields = new ArrayList<>(List.of(4L, 8L, 16L, 20L, 24L, 32L, 36L, 40L, 48L, 56L, 60L, 64L));
        if (version == 3) {
            fields.addAll(List.of(72L, 80L, 88L, 96L, 100L));
        }
        while (pos + 8 <= cs) {
            int type = b.getInt(pos);
            int len = b.getInt(pos + 4);
            fields.add((long) pos);
            fields.add((long) pos + 4);
            if (type == 0) {
                pos += 8;
                break;
            }
            pos += 8 + ((len + 7) & ~7);
        }
        long headerEnd = Math.max(pos, backingOff != 0 ? backingOff + backingLen : 0);
        List<Region> regions = new ArrayList<>();
        regions.add(new Region("header", 0, headerEnd));
        regions.add(new Region("L1", l1Off, l1Off + 8L * l1Size));
        for (int i = 0; i < l1Size; i++) {
            long l2 = b.getLong((int) l1Off + 8 * i) & 0x00fffffffffffe00L;
            if (l2 != 0) {
                regions.add(new Region("L2", l2, l2 + cs));
            }
        }
        int usedRt = 0;
        for (int i = 0; i < rtClusters * cs / 8; i++) {
            long rb = b.getLong((int) rtOff + 8 * i);
            if (rb != 0) {
                regions.add(new Region("refblock", rb, rb + Math.min(cs, Math.max(8, (f.length / cs + 1) << order >> 3))));
                usedRt = i + 1;
            }
        }
        regions.add(new Region("reftable", rtOff, rtOff + Math.max(64, 8L * usedRt + 16)));
        return new Layout(cs, f.length, regions, fields.stream().mapToLong(Long::longValue).toArray());
    }

    /** Outcome of one case, for the summary. */
    private enum Result { ERROR, SAME_AS_ORIGINAL, SAME_AS_QEMU, DATA_UNCHECKED, DATA_QEMU_FAILED }

    @Test
    void randomMetadataCorruption() throws Exception {
        long t0 = System.nanoTime();
        int[] counts = new int[Result.values().length];
        int writable = 0;
        List<AssertionError> failures = new ArrayList<>();
        int sampleEvery = Math.max(1, CASES / QEMU_SAMPLES);
        for (int i = 0; i < CASES; i++) {
            if (ONLY_CASE >= 0 && i != ONLY_CASE) {
                continue;
            }
            Random rnd = new Random(SEED * 1_000_003L + i);
            Sample s = SAMPLES.get(rnd.nextInt(SAMPLES.size()));
            byte[] bad = s.bytes.clone();
            String desc = corrupt(rnd, s, bad);
            String ctx = "-Dlivemon.corruption.seed=" + SEED + " -Dlivemon.corruption.case=" + i + " (" + s.name
                    + ": " + desc + ")";
            String name = "case-" + s.name;
            Files.write(dir.resolve(name), bad);
            boolean qemu = ONLY_CASE >= 0 || i % sampleEvery == 0;
            try {
                Result r = runCase(ctx, name, s, bad, desc.startsWith("ref"), qemu, false);
                counts[r.ordinal()]++;
                if (i % 8 == 3) {
                    Files.write(dir.resolve(name), bad);
                    runCase(ctx + " writable", name, s, bad, false, false, true);
                    writable++;
                }
            } catch (AssertionError e) {
                failures.add(e);
                if (failures.size() >= 20) {
                    break;
                }
            }
        }
        if (!failures.isEmpty()) {
            AssertionError all = new AssertionError(failures.size() + " failing case(s) (at most 20 are collected); "
                    + "the first: " + failures.get(0).getMessage(), failures.get(0));
            for (AssertionError e : failures.subList(1, failures.size())) {
                all.addSuppressed(e);
            }
            throw all;
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        System.out.println("CorruptionFuzzTest seed=" + SEED + ": " + CASES + " cases (+" + writable
                + " writable opens) in " + ms + " ms; outcomes " + Arrays.toString(Result.values()) + " = "
                + Arrays.toString(counts) + "; changed data that qemu-img refused: " + qemuRefusedChanged.get());
    }

    /** Applies one to three mutations to one metadata region; returns a description. */
    private static String corrupt(Random rnd, Sample s, byte[] bad) {
        Layout l = s.layout;
        int w = rnd.nextInt(100);
        String kind = w < 30 ? "header" : w < 45 ? "L1" : w < 72 ? "L2" : w < 82 ? "reftable" : "refblock";
        List<Region> rs = l.regions.stream().filter(r -> r.kind.equals(kind)).toList();
        if (rs.isEmpty()) {
            rs = List.of(l.regions.get(0));
        }
        Region reg = rs.get(rnd.nextInt(rs.size()));
        StringBuilder d = new StringBuilder(reg.kind.equals("reftable") || reg.kind.equals("refblock")
                ? "ref:" : "").append(reg.kind).append('@').append(Long.toHexString(reg.start));
        int n = 1 + (rnd.nextInt(4) == 0 ? rnd.nextInt(3) : 0);
        ByteBuffer bb = ByteBuffer.wrap(bad);
        for (int k = 0; k < n; k++) {
            long len = reg.end - reg.start;
            int how = rnd.nextInt(10);
            if (how < 3) { // flip one bit
                int at = (int) (reg.start + rnd.nextLong(len));
                int bit = rnd.nextInt(8);
                bad[at] ^= (byte) (1 << bit);
                d.append(" bit ").append(bit).append(" of 0x").append(Integer.toHexString(at));
            } else if (how < 4) { // a random byte
                int at = (int) (reg.start + rnd.nextLong(len));
                bad[at] = (byte) rnd.nextInt(256);
                d.append(" byte 0x").append(Integer.toHexString(at));
            } else { // an interesting value in a field (aligned, preferring entries in use)
                int at;
                boolean isInt;
                if (reg.kind.equals("header")) {
                    at = (int) l.headerFields[rnd.nextInt(l.headerFields.length)];
                    isInt = at == 4 || at == 16 || at == 20 || at == 32 || at == 36 || at == 56 || at == 60
                            || at == 96 || at == 100 || at >= 104 || rnd.nextInt(4) == 0;
                } else {
                    int entries = (int) Math.max(1, len / 8);
                    at = (int) reg.start + 8 * rnd.nextInt(entries);
                    for (int tries = 0; tries < 20 && bb.getLong(at) == 0 && rnd.nextInt(4) != 0; tries++) {
                        at = (int) reg.start + 8 * rnd.nextInt(entries);
                    }
                    isInt = rnd.nextInt(5) == 0;
                    if (isInt && rnd.nextBoolean()) {
                        at += 4;
                    }
                }
                if (at + (isInt ? 4 : 8) > bad.length) {
                    continue;
                }
                long old = isInt ? bb.getInt(at) & 0xffffffffL : bb.getLong(at);
                long v = interesting(rnd, old, l);
                if (isInt) {
                    bb.putInt(at, (int) v);
                } else {
                    bb.putLong(at, v);
                }
                d.append(isInt ? " int@0x" : " long@0x").append(Integer.toHexString(at)).append("=0x")
                        .append(Long.toHexString(isInt ? v & 0xffffffffL : v));
            }
        }
        return d.toString();
    }

    private static long interesting(Random rnd, long old, Layout l) {
        long cs = l.cs;
        long fs = l.fileSize;
        return switch (rnd.nextInt(22)) {
            case 0 -> 0;
            case 1 -> -1;
            case 2 -> 1;
            case 3 -> cs;
            case 4 -> cs - 1;
            case 5 -> fs;
            case 6 -> fs - cs;
            case 7 -> fs + cs;
            case 8 -> 1L << 40;
            case 9 -> 0x80000000L;
            case 10 -> 0x7fffffffL;
            case 11 -> Long.MIN_VALUE;
            case 12 -> old ^ (1L << rnd.nextInt(64));
            case 13 -> old + cs;
            case 14 -> old - cs;
            case 15 -> old | (1L << 62); // compressed flag
            case 16 -> old | 1; // zero flag
            case 17 -> old ^ (1L << 63); // copied flag
            case 18 -> l.regions.get(rnd.nextInt(l.regions.size())).start; // another table
            case 19 -> old + 512;
            case 20 -> rnd.nextLong();
            default -> 1L << rnd.nextInt(63);
        };
    }

    private Result runCase(String ctx, String name, Sample s, byte[] bad, boolean refOnly, boolean qemu,
                           boolean writable) throws Exception {
        Future<Object> f = worker.submit(() -> {
            long before = allocated();
            try {
                Object r = writable ? openWriteClose(name, s) : readImage(name, s, bad.length);
                long used = allocated() - before;
                if (used > MAX_ALLOC) {
                    throw new AssertionError("allocated " + (used >> 20) + " MiB");
                }
                return r;
            } catch (IOException e) {
                return e;
            }
        });
        Object out;
        try {
            out = f.get(20, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw new AssertionError(ctx + ": hang (no result after 20 s)");
        } catch (java.util.concurrent.ExecutionException e) {
            throw new AssertionError(ctx + ": " + e.getCause(), e.getCause());
        }
        if (out instanceof IOException e) {
            assertThat(e.getMessage()).as(ctx + ": error message of " + e).isNotBlank().hasSizeGreaterThan(8)
                    .doesNotStartWith("java.");
            if (!writable || !(e instanceof ImageException) || !e.getMessage().startsWith("W:")) {
                byte[] now = Files.readAllBytes(dir.resolve(name));
                if (!writable || e.getMessage().startsWith("OPEN:")) {
                    if (!Arrays.equals(now, bad)) {
                        throw new AssertionError(ctx + ": a failing open changed the file at "
                                + Arrays.mismatch(now, bad) + ": " + e.getMessage());
                    }
                }
            }
            return Result.ERROR;
        }
        if (writable) {
            return Result.DATA_UNCHECKED;
        }
        byte[] now = Files.readAllBytes(dir.resolve(name));
        if (!Arrays.equals(now, bad)) {
            throw new AssertionError(ctx + ": a read-only open changed the file at " + Arrays.mismatch(now, bad));
        }
        Read got = (Read) out;
        if (refOnly) {
            if (got.size != s.content.length || !Arrays.equals(got.data, s.content)) {
                throw new AssertionError(ctx + ": only refcounts were damaged but the data differs at "
                        + Arrays.mismatch(got.data, s.content));
            }
            return Result.SAME_AS_ORIGINAL;
        }
        boolean original = got.size == s.content.length && Arrays.equals(got.data, s.content);
        // compare with qemu-img for the sampled cases, and for the first cases whose data changed
        if (!qemu && (original || qemuChanged.incrementAndGet() > MAX_QEMU_CHANGED)) {
            return original ? Result.SAME_AS_ORIGINAL : Result.DATA_UNCHECKED;
        }
        if (got.size > 64L << 20) {
            return original ? Result.SAME_AS_ORIGINAL : Result.DATA_UNCHECKED; // too large to convert in a test
        }
        QemuTools.Result r = QemuTools.run(dir, "timeout", "20", "qemu-img", "convert", "-O", "raw", name,
                name + ".q.raw");
        if (!r.ok()) {
            // qemu-img refuses the file while livemon read it: accepted only if livemon read the original data
            if (!original) {
                qemuRefusedChanged.incrementAndGet();
            }
            return Result.DATA_QEMU_FAILED;
        }
        byte[] ref = Files.readAllBytes(dir.resolve(name + ".q.raw"));
        if (ref.length != got.size || !Arrays.equals(got.data, 0, got.data.length, ref, 0, got.data.length)) {
            throw new AssertionError(ctx + ": livemon read different data than qemu-img convert (sizes " + got.size
                    + "/" + ref.length + ", first difference at "
                    + Arrays.mismatch(got.data, Arrays.copyOf(ref, got.data.length)) + ")");
        }
        return Result.SAME_AS_QEMU;
    }

    private record Read(long size, byte[] data) {
    }

    private static long allocated() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    /** Reads the guest view: all of it up to 4x the original size; past that only a few chunks are probed. */
    private static Read readImage(String name, Sample s, long fileLen) throws IOException {
        Image img = Images.openChain(dir, name, null, true);
        try {
            long size = img.size();
            long full = Math.min(size, 4L * Math.max(s.content.length, 1 << 20));
            byte[] data = new byte[(int) full];
            int chunk = 192 << 10;
            for (long off = 0; off < full; off += chunk) {
                img.read(off, data, (int) off, (int) Math.min(chunk, full - off));
            }
            if (size > full) {
                byte[] buf = new byte[4096];
                Random r = new Random(size);
                for (int k = 0; k < 8; k++) {
                    long off = k == 0 ? size - 1 : full + (long) (r.nextDouble() * (size - full));
                    img.read(off, buf, 0, (int) Math.min(buf.length, size - off));
                }
            }
            return new Read(size, data);
        } finally {
            Images.closeChain(img);
        }
    }

    /** Opens writable and writes one cluster-sized chunk. Errors carry "OPEN:" when the open failed. */
    private static Object openWriteClose(String name, Sample s) throws IOException {
        Image img;
        try {
            img = Images.openChain(dir, name, null, false);
        } catch (ImageException e) {
            throw new ImageException("OPEN: " + e.getMessage(), e);
        }
        try {
            long size = img.size();
            if (size > 0) {
                int n = (int) Math.min(size, s.layout.cs + 100);
                long off = Math.max(0, Math.min(size - n, s.content.length / 3));
                byte[] d = new byte[n];
                Arrays.fill(d, (byte) 0x99);
                img.write(off, d, 0, n);
                img.flush();
            }
        } finally {
            Images.closeChain(img);
        }
        return "ok";
    }
}
