package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * SIGKILL of a child JVM running a random write / write-zeroes / discard / flush workload, repeatedly on the same
 * image (each round reopens what the previous kill left). After every kill: {@code qemu-img check} finds no
 * corruption (leaks allowed; lazy-refcounts images are first repaired by a writable livemon open and must then be
 * clean), livemon and {@code qemu-img convert} read the same bytes, and every cluster holds the model's data after
 * the last flush the child reported as completed, or after one of the operations the child may have done since
 * (up to the next flush). The child prints "F i" on stdout when the flush that is op i returned; the parent replays
 * the same op stream from the seed to build the model. 9 kills per configuration, 54 in all (plus CrashSafetyTest's).
 * A failure names the configuration, round and seed.
 */
class KillModelTest {
    static final long SIZE = 8L << 20;
    private static final int ROUNDS = 9;

    @TempDir
    Path dir;

    /** One operation of the child's stream. kind: 0 write, 1 zero, 2 discard, 3 flush. */
    record Op(int kind, long off, int len, long dataSeed) {
        byte[] data() {
            byte[] d = new byte[len];
            new Random(dataSeed).nextBytes(d);
            return d;
        }
    }

    /** The op stream for a seed: deterministic, shared by the child and the parent. */
    static final class Ops {
        private final Random rnd;
        private final int cs;
        private int untilFlush;

        Ops(long seed, int cs) {
            this.rnd = new Random(seed);
            this.cs = cs;
            this.untilFlush = 1 + rnd.nextInt(6);
        }

        Op next() {
            if (untilFlush-- == 0) {
                untilFlush = 1 + rnd.nextInt(6);
                return new Op(3, 0, 0, 0);
            }
            int r = rnd.nextInt(10);
            int kind = r < 6 ? 0 : r < 8 ? 1 : 2;
            long off = rnd.nextLong(SIZE);
            int max = rnd.nextInt(8) == 0 ? 256 << 10 : 3 * cs + 5000;
            int len = 1 + rnd.nextInt(max);
            if (rnd.nextBoolean()) {
                off = off / cs * cs;
                len = Math.max(cs, len / cs * cs);
            }
            len = (int) Math.min(len, SIZE - off);
            return new Op(kind, off, len, rnd.nextLong());
        }
    }

    /** The child: args dir, file, seed, cluster size. Runs the op stream forever. */
    public static void main(String[] args) throws Exception {
        Path d = Path.of(args[0]);
        Ops ops = new Ops(Long.parseLong(args[2]), Integer.parseInt(args[3]));
        Image img = Images.openChain(d, args[1], null, false);
        System.out.println("started");
        for (int i = 0; ; i++) {
            Op op = ops.next();
            switch (op.kind) {
                case 0 -> img.write(op.off, op.data(), 0, op.len);
                case 1 -> img.writeZeroes(op.off, op.len);
                case 2 -> img.discard(op.off, op.len);
                default -> {
                    img.flush();
                    System.out.println("F " + i);
                }
            }
        }
    }

    static void applyToModel(Op op, byte[] model, int cs, boolean discardKeeps) {
        switch (op.kind) {
            case 0 -> System.arraycopy(op.data(), 0, model, (int) op.off, op.len);
            case 1 -> Arrays.fill(model, (int) op.off, (int) (op.off + op.len), (byte) 0);
            case 2 -> {
                if (!discardKeeps) {
                    long end = op.off + op.len;
                    for (long s = (op.off + cs - 1) / cs * cs; s + cs <= end; s += cs) {
                        Arrays.fill(model, (int) s, (int) (s + cs), (byte) 0);
                    }
                }
            }
            default -> { }
        }
    }

    @ParameterizedTest(name = "cs={0} compat={1} rb={2} backing={3} lazy={4}")
    @CsvSource({
        "512, 1.1, 16, false, false",
        "4096, 1.1, 64, true, false",
        "65536, 1.1, 16, true, true",
        "1024, 1.1, 1, false, true",
        "4096, 0.10, 16, true, false",
        "512, 0.10, 16, false, false",
    })
    void killRepeatedlyKeepsFlushedData(int cs, String compat, int rb, boolean backing, boolean lazy)
            throws Exception {
        long seed0 = Long.getLong("livemon.kill.seed", 77L * cs + rb + (lazy ? 1 : 0) + (backing ? 2 : 0));
        String ctx = "cs=" + cs + " compat=" + compat + " rb=" + rb + " backing=" + backing + " lazy=" + lazy;
        boolean discardKeeps = compat.equals("0.10") && backing;
        byte[] model = new byte[(int) SIZE];
        Qcow2CreateOptions o = Qcow2CreateOptions.defaults().withClusterSize(cs).withCompat(compat)
                .withRefcountBits(rb).withLazyRefcounts(lazy);
        if (backing) {
            QemuTools.qemuImg(dir, "create", "-f", "qcow2", "base.img", Long.toString(SIZE - (1 << 20)));
            QemuTools.qemuIo(dir, "base.img", "write -P 0x5a 0 2M", "write -P 0x5b 3M 2M", "write -z 1M 64k");
            QemuTools.toRaw(dir, "base.img", "base.raw");
            byte[] b = Files.readAllBytes(dir.resolve("base.raw"));
            System.arraycopy(b, 0, model, 0, b.length);
            o = o.withBackingFile("base.img", "qcow2");
        }
        Images.createQcow2(dir, "k.qcow2", SIZE, o);
        Random delays = new Random(seed0);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        int kills = 0;
        List<Integer> flushedOps = new ArrayList<>();
        for (int round = 0; round < ROUNDS; round++) {
            long seed = seed0 * 1000 + round;
            String what = ctx + " round=" + round + " seed=" + seed;
            Path log = dir.resolve("child" + round + ".log");
            Process p = new ProcessBuilder(List.of(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx96m",
                    "-cp", System.getProperty("java.class.path"), KillModelTest.class.getName(), dir.toString(),
                    "k.qcow2", Long.toString(seed), Integer.toString(cs)))
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (!Files.readString(log).contains("started") && System.nanoTime() < deadline && p.isAlive()) {
                    Thread.sleep(5);
                }
                Thread.sleep(20 + delays.nextInt(400));
            } finally {
                p.destroyForcibly(); // SIGKILL
                p.waitFor(30, TimeUnit.SECONDS);
            }
            String out = Files.readString(log);
            assertThat(out).as(what + ": child output").startsWith("started").doesNotContain("Exception");
            kills++;
            int lastFlushed = -1;
            for (String line : out.split("\n", -1)) {
                // only complete lines: a line cut by the kill has no newline after it and is not in this list
                if (line.startsWith("F ") && out.contains(line + "\n")) {
                    lastFlushed = Integer.parseInt(line.substring(2).trim());
                }
            }
            flushedOps.add(lastFlushed);
            if (lazy) {
                Images.closeChain(Images.openChain(dir, "k.qcow2", null, false)); // repairs the dirty image
                QemuTools.Result r = QemuTools.check(dir, "k.qcow2");
                assertThat(r.exitCode()).as(what + "\n" + r.describe()).isZero();
            } else {
                QemuTools.Result r = QemuTools.check(dir, "k.qcow2");
                assertThat(r.exitCode()).as(what + "\n" + r.describe()).isIn(0, 3);
            }
            byte[] got;
            Image img = Images.openChain(dir, "k.qcow2", null, true);
            try {
                got = TestSupport.readAll(img);
            } finally {
                Images.closeChain(img);
            }
            QemuTools.toRaw(dir, "k.qcow2", "k.raw");
            byte[] qemu = Files.readAllBytes(dir.resolve("k.raw"));
            if (!Arrays.equals(got, qemu)) {
                throw new AssertionError(what + ": livemon and qemu-img differ at " + Arrays.mismatch(got, qemu));
            }
            // the model after the last reported flush, then each later op up to the next flush
            Ops ops = new Ops(seed, cs);
            int i = 0;
            for (; i <= lastFlushed; i++) {
                applyToModel(ops.next(), model, cs, discardKeeps);
            }
            int clusters = (int) (SIZE / cs);
            boolean[] ok = new boolean[clusters];
            int missing = 0;
            for (int k = 0; k < clusters; k++) {
                ok[k] = Arrays.equals(model, k * cs, (k + 1) * cs, got, k * cs, (k + 1) * cs);
                missing += ok[k] ? 0 : 1;
            }
            List<Integer> tried = new ArrayList<>();
            while (missing > 0) {
                Op op = ops.next();
                tried.add(i);
                i++;
                if (op.kind == 3) {
                    break;
                }
                applyToModel(op, model, cs, discardKeeps);
                for (int k = 0; k < clusters; k++) {
                    if (!ok[k] && Arrays.equals(model, k * cs, (k + 1) * cs, got, k * cs, (k + 1) * cs)) {
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
                throw new AssertionError(what + ": after the flush of op " + lastFlushed + ", the cluster at guest "
                        + "offset " + (long) k * cs + " matches no later state (ops tried " + tried + "); "
                        + missing + " clusters differ");
            }
            // the next round continues from what is on disk
            model = got;
        }
        assertThat(kills).isEqualTo(ROUNDS);
        System.out.println("KillModelTest " + ctx + ": " + kills + " kills; last flushed op per round " + flushedOps);
    }
}
