package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fault injection in the style of H2's MVStore tests: a small workload (writes, write-zeroes, discards and flushes
 * across cluster boundaries, allocating new L2 tables and refcount blocks, and with 512-byte clusters growing the
 * refcount table) runs against a {@link FaultInjectingChannel} that fails the N-th write, for EVERY N from 1 to the
 * number of writes the workload does (and likewise the N-th force). The image is then dropped without a clean
 * close (only the real channel is closed) and reopened: {@code qemu-img check} must find no corruption (leaks
 * allowed), livemon and {@code qemu-img convert} must read the same bytes, and every cluster must hold the data of
 * the model after the last completed flush or after one of the operations that followed it (unflushed operations
 * may or may not have reached the file, but each cluster is all-old or all-new per operation).
 *
 * <p>Modes: CRASH (the failing call and everything after it fail: the file holds a prefix of the writes) and
 * TRANSIENT (only the N-th write fails; the engine's error handling runs, then the image is dropped).
 * A failure message names config, mode and N; the workload seed is fixed per config ({@code -Dlivemon.fault.seed}
 * overrides it).
 */
class FaultInjectionTest {
    private static final long SIZE = 4L << 20;

    @TempDir
    Path dir;

    private record Op(int kind, long off, int len, long dataSeed) {
        static final int WRITE = 0;
        static final int ZERO = 1;
        static final int DISCARD = 2;
        static final int FLUSH = 3;

        byte[] data() {
            byte[] d = new byte[len];
            new Random(dataSeed).nextBytes(d);
            return d;
        }

        @Override
        public String toString() {
            return new String[] {"write", "zero", "discard", "flush"}[kind] + "(" + off + "," + len + ")";
        }
    }

    private record Config(int cs, String compat, int rb, boolean backing, boolean lazy, long prefill) {
        boolean v2() {
            return compat.equals("0.10");
        }
    }

    static List<Op> workload(long seed, int cs, int n) {
        Random rnd = new Random(seed);
        List<Op> ops = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (i % 5 == 4) {
                ops.add(new Op(Op.FLUSH, 0, 0, 0));
                continue;
            }
            int kind = rnd.nextInt(10) < 6 ? Op.WRITE : rnd.nextBoolean() ? Op.ZERO : Op.DISCARD;
            long off = rnd.nextInt((int) SIZE);
            int len = 1 + rnd.nextInt(3 * cs + 700);
            if (rnd.nextInt(3) == 0) { // cluster-aligned, one to three clusters
                off = off / cs * cs;
                len = cs * (1 + rnd.nextInt(3));
            } else if (rnd.nextInt(4) == 0) { // straddle a cluster boundary
                off = Math.max(0, off / cs * cs - rnd.nextInt(200));
            }
            len = (int) Math.min(len, SIZE - off);
            ops.add(new Op(kind, off, len, rnd.nextLong()));
        }
        ops.add(new Op(Op.FLUSH, 0, 0, 0));
        return ops;
    }

    private static void applyToModel(Op op, byte[] model, Config c) {
        switch (op.kind) {
            case Op.WRITE -> System.arraycopy(op.data(), 0, model, (int) op.off, op.len);
            case Op.ZERO -> Arrays.fill(model, (int) op.off, (int) (op.off + op.len), (byte) 0);
            case Op.DISCARD -> {
                if (!(c.v2() && c.backing)) {
                    long end = op.off + op.len;
                    for (long s = (op.off + c.cs - 1) / c.cs * c.cs; s + c.cs <= end; s += c.cs) {
                        Arrays.fill(model, (int) s, (int) (s + c.cs), (byte) 0);
                    }
                }
            }
            default -> { }
        }
    }

    /** Where the workload stopped: the last flush that completed and the op that failed (ops.size() if none). */
    private record Outcome(int lastFlushed, int failedOp, IOException error) {
    }

    private static Outcome runWorkload(Image img, List<Op> ops) {
        int lastFlushed = -1;
        for (int i = 0; i < ops.size(); i++) {
            Op op = ops.get(i);
            try {
                switch (op.kind) {
                    case Op.WRITE -> img.write(op.off, op.data(), 0, op.len);
                    case Op.ZERO -> img.writeZeroes(op.off, op.len);
                    case Op.DISCARD -> img.discard(op.off, op.len);
                    default -> {
                        img.flush();
                        lastFlushed = i;
                    }
                }
            } catch (IOException e) {
                return new Outcome(lastFlushed, i, e);
            }
        }
        return new Outcome(lastFlushed, ops.size(), null);
    }

    @ParameterizedTest(name = "cs={0} compat={1} rb={2} backing={3} lazy={4} prefill={5}")
    @CsvSource({
        // 512-byte clusters, 64-bit refcounts: one refcount-table cluster covers 2 MiB of file; the prefill
        // leaves the file just short of that so the workload grows the refcount table
        "512, 1.1, 64, false, false, 2025000",
        "4096, 1.1, 16, true, false, 0",
        "512, 0.10, 16, true, false, 0",
        "1024, 1.1, 1, false, true, 200000",
    })
    void everyFailedWriteLeavesConsistentImage(int cs, String compat, int rb, boolean backing, boolean lazy,
                                               long prefill) throws Exception {
        Config c = new Config(cs, compat, rb, backing, lazy, prefill);
        long seed = Long.getLong("livemon.fault.seed", 1000L + cs + rb + (backing ? 7 : 0));
        List<Op> ops = workload(seed, cs, 40);
        String ctx = "cs=" + cs + " compat=" + compat + " rb=" + rb + " backing=" + backing + " lazy=" + lazy
                + " seed=" + seed;

        // the image every run starts from
        byte[] base = new byte[(int) SIZE];
        Path tmpl = Files.createDirectories(dir.resolve("tmpl"));
        Qcow2CreateOptions o = Qcow2CreateOptions.defaults().withClusterSize(cs).withCompat(compat)
                .withRefcountBits(rb).withLazyRefcounts(lazy);
        if (backing) {
            QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", "cluster_size=4096", "base.img",
                    Long.toString(SIZE - 512 * 1024)); // shorter than the overlay
            QemuTools.qemuIo(dir, "base.img", "write -P 0x5a 0 1M", "write -P 0x5b 1536k 1M",
                    "write -P 0x5c 3M 64k");
            QemuTools.toRaw(dir, "base.img", "base.raw");
            byte[] b = Files.readAllBytes(dir.resolve("base.raw"));
            System.arraycopy(b, 0, base, 0, b.length);
            o = o.withBackingFile("../base.img", "qcow2");
        }
        Images.createQcow2(tmpl, "t.qcow2", SIZE, o);
        if (prefill > 0) {
            try (Image img = Images.openChain(tmpl, "t.qcow2", null, false)) {
                byte[] d = new byte[(int) prefill];
                Arrays.fill(d, (byte) 0x77);
                img.write(0, d, 0, d.length);
                System.arraycopy(d, 0, base, 0, d.length);
            }
        }
        byte[] tmplBytes = Files.readAllBytes(tmpl.resolve("t.qcow2"));

        // a run without faults: counts the writes and forces, and proves the workload does what we think
        Path r0 = Files.createDirectories(dir.resolve("r0"));
        Files.write(r0.resolve("t.qcow2"), tmplBytes);
        FaultInjectingChannel[] counter = new FaultInjectingChannel[1];
        Qcow2Image img0 = open(r0, 0, 0, FaultInjectingChannel.Mode.CRASH, counter);
        Outcome full = runWorkload(img0, ops);
        assertThat(full.error()).as(ctx).isNull();
        long totalWrites = counter[0].writes();
        long totalForces = counter[0].forces();
        Images.closeChain(img0);
        byte[] model = base.clone();
        for (Op op : ops) {
            applyToModel(op, model, c);
        }
        assertThat(readImage(r0)).as(ctx + " fault-free run").isEqualTo(model);
        QemuTools.assertClean(r0, "t.qcow2");
        if (prefill > 0 && rb == 64) {
            assertThat(headerLong(r0.resolve("t.qcow2"), 48)).as(ctx + ": the workload must grow the refcount table")
                    .isNotEqualTo(headerLong(tmpl.resolve("t.qcow2"), 48));
        }

        // every N, in two modes, then every failing force
        List<Object[]> cases = new ArrayList<>();
        for (long n = 1; n <= totalWrites; n++) {
            cases.add(new Object[] {FaultInjectingChannel.Mode.CRASH, n, 0L});
            if (n % 2 == 1) { // transient failures: every other N (keeps the run time down)
                cases.add(new Object[] {FaultInjectingChannel.Mode.TRANSIENT, n, 0L});
            }
        }
        for (long n = 1; n <= totalForces; n++) {
            cases.add(new Object[] {FaultInjectingChannel.Mode.CRASH, 0L, n});
        }
        AtomicLong done = new AtomicLong();
        // One case at a time: the cases share ../base.img, and livemon's lock check on it (a trial lock, visible to
        // another process for its moment) made a concurrent case's qemu-img convert fail to open it now and then.
        ExecutorService pool = Executors.newFixedThreadPool(1);
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (Object[] k : cases) {
                fs.add(pool.submit(() -> {
                    FaultInjectingChannel.Mode mode = (FaultInjectingChannel.Mode) k[0];
                    long failW = (Long) k[1];
                    long failF = (Long) k[2];
                    String what = ctx + " mode=" + mode + (failW > 0 ? " failing write #" + failW + "/" + totalWrites
                            : " failing force #" + failF + "/" + totalForces);
                    oneCase(what, c, ops, base, tmplBytes, mode, failW, failF);
                    done.incrementAndGet();
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        System.out.println("FaultInjectionTest " + ctx + ": " + totalWrites + " writes, " + totalForces
                + " forces, " + done.get() + " fault cases");
    }

    private void oneCase(String what, Config c, List<Op> ops, byte[] base, byte[] tmplBytes,
                         FaultInjectingChannel.Mode mode, long failW, long failF) throws Exception {
        Path d = Files.createDirectories(dir.resolve("w" + failW + "f" + failF + mode.name().charAt(0)));
        try {
            Files.write(d.resolve("t.qcow2"), tmplBytes);
            FaultInjectingChannel[] chan = new FaultInjectingChannel[1];
            Qcow2Image img = open(d, failW, failF, mode, chan);
            Outcome out = runWorkload(img, ops);
            assertThat(out.error()).as(what + ": the fault must surface as an IOException").isNotNull();
            assertThat(chan[0].failed()).as(what).isTrue();
            // crash: no flush, no header update, no close of the engine
            chan[0].crash();
            if (img.backing() != null) {
                Images.closeChain(img.backing());
            }
            if (c.lazy) {
                // a dirty lazy-refcounts image is repaired by the next writable open, as QEMU does
                Images.closeChain(Images.openChain(d, "t.qcow2", null, false));
                QemuTools.Result r = QemuTools.check(d, "t.qcow2");
                assertThat(r.exitCode()).as(what + "\n" + r.describe()).isZero();
            } else {
                QemuTools.Result r = QemuTools.check(d, "t.qcow2");
                assertThat(r.exitCode()).as(what + " (error: " + out.error() + ")\n" + r.describe()).isIn(0, 3);
            }
            byte[] got = readImage(d);
            QemuTools.toRaw(d, "t.qcow2", "t.raw");
            byte[] qemu = Files.readAllBytes(d.resolve("t.raw"));
            if (!Arrays.equals(got, qemu)) {
                throw new AssertionError(what + ": livemon and qemu-img read different data at "
                        + Arrays.mismatch(got, qemu));
            }
            checkAgainstModel(what, c, ops, base, out, got);
        } finally {
            deleteTree(d);
        }
    }

    /** Each cluster must equal the model after the last completed flush or after a later op up to the failed one. */
    private static void checkAgainstModel(String what, Config c, List<Op> ops, byte[] base, Outcome out, byte[] got) {
        byte[] m = base.clone();
        for (int i = 0; i <= out.lastFlushed(); i++) {
            applyToModel(ops.get(i), m, c);
        }
        int clusters = (int) (SIZE / c.cs);
        boolean[] ok = new boolean[clusters];
        int missing = 0;
        for (int k = 0; k < clusters; k++) {
            ok[k] = Arrays.equals(m, k * c.cs, (k + 1) * c.cs, got, k * c.cs, (k + 1) * c.cs);
            missing += ok[k] ? 0 : 1;
        }
        for (int j = out.lastFlushed() + 1; j <= Math.min(out.failedOp(), ops.size() - 1) && missing > 0; j++) {
            applyToModel(ops.get(j), m, c);
            for (int k = 0; k < clusters; k++) {
                if (!ok[k] && Arrays.equals(m, k * c.cs, (k + 1) * c.cs, got, k * c.cs, (k + 1) * c.cs)) {
                    ok[k] = true;
                    missing--;
                }
            }
        }
        if (missing > 0) {
            int k = 0;
            while (ok[k]) {
                k++;
            }
            throw new AssertionError(what + ": cluster at guest offset " + (long) k * c.cs + " holds data of no "
                    + "state between the last completed flush (op " + out.lastFlushed() + ") and the failed op "
                    + out.failedOp() + " (" + ops.get(Math.min(out.failedOp(), ops.size() - 1)) + "); "
                    + missing + " such clusters");
        }
    }

    private static Qcow2Image open(Path d, long failW, long failF, FaultInjectingChannel.Mode mode,
                                   FaultInjectingChannel[] out) throws IOException {
        Qcow2Image img = Qcow2Image.openWrapped(d.resolve("t.qcow2"), "t.qcow2", false,
                Qcow2Image.Options.defaults(), ch -> out[0] = new FaultInjectingChannel(ch, failW, failF, mode));
        String b = img.backingFileString();
        if (b != null) {
            img.setBacking(Images.openChain(d, Images.pathCombine("t.qcow2", b), null, true));
        }
        return img;
    }

    private static byte[] readImage(Path d) throws IOException {
        Image img = Images.openChain(d, "t.qcow2", null, true);
        try {
            return TestSupport.readAll(img);
        } finally {
            Images.closeChain(img);
        }
    }

    private static long headerLong(Path p, int off) throws IOException {
        byte[] h = new byte[8];
        System.arraycopy(Files.readAllBytes(p), off, h, 0, 8);
        return ByteBuffer.wrap(h).getLong();
    }

    private static void deleteTree(Path d) throws IOException {
        try (Stream<Path> s = Files.walk(d)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
