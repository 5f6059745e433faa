package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.channels.FileChannel;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * kill -9 of a writing process at a random moment: qemu-img check may report leaked clusters (exit 3), never a
 * corruption, and the image holds every write that completed before the kill. A SIGKILL loses nothing that reached
 * the OS, so the content is exact: the child logs each request after it returned, the test replays the log on a
 * model, and only the one request in flight at the kill may have landed in part (each byte of its range old or new).
 */
class CrashSafetyTest {
    @TempDir
    Path dir;

    /**
     * The child process: writes (a pattern byte per request), zero writes and discards forever, logging each request
     * as {@code op offset length byte} after it returned. Args: dir, file, seed.
     */
    public static void main(String[] args) throws Exception {
        Random rnd = new Random(Long.parseLong(args[2]));
        Image img = Images.openChain(Path.of(args[0]), args[1], null, false);
        long size = img.size();
        try (FileChannel log = FileChannel.open(Path.of(args[0]).resolve("ops.log"), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
            Files.writeString(Path.of(args[0]).resolve("started"), "1");
            for (int i = 0; ; i++) {
                long off = rnd.nextLong(size);
                int len = (int) Math.min(size - off, 1 + rnd.nextInt(200_000));
                int op = rnd.nextInt(4);
                byte pattern = (byte) (1 + i % 250);
                switch (op) {
                    case 0 -> img.writeZeroes(off, len);
                    case 1 -> img.discard(off, len);
                    default -> {
                        byte[] b = new byte[len];
                        Arrays.fill(b, pattern);
                        img.write(off, b, 0, len);
                    }
                }
                String line = op + " " + off + " " + len + " " + pattern + "\n";
                log.write(ByteBuffer.wrap(line.getBytes(StandardCharsets.US_ASCII)));
            }
        }
    }

    @ParameterizedTest(name = "cs={0} rb={1} lazy={2} delay={3}ms")
    @CsvSource({"512, 64, false, 400", "4096, 16, false, 250", "65536, 16, true, 300", "1024, 1, false, 350"})
    void killDuringWritesLeavesConsistentImage(int cs, int rb, boolean lazy, int delayMs) throws Exception {
        Images.createQcow2(dir, "c.img", 8L << 20,
                Qcow2CreateOptions.defaults().withClusterSize(cs).withRefcountBits(rb).withLazyRefcounts(lazy));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(List.of(java, "-cp", System.getProperty("java.class.path"),
                CrashSafetyTest.class.getName(), dir.toString(), "c.img", Integer.toString(delayMs)))
                .redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!Files.exists(dir.resolve("started")) && System.nanoTime() < deadline && p.isAlive()) {
                Thread.sleep(20);
            }
            Thread.sleep(delayMs);
        } finally {
            p.destroyForcibly(); // SIGKILL
            p.waitFor(30, TimeUnit.SECONDS);
        }
        assertThat(Files.exists(dir.resolve("started"))).as(Files.readString(dir.resolve("child.log"))).isTrue();
        assertContentIsEveryCompletedRequest(delayMs, cs);
        QemuTools.Result r = QemuTools.check(dir, "c.img");
        if (lazy) {
            // a lazy-refcounts image killed while dirty: qemu-img check reports it; our writable open repairs it
            Images.closeChain(Images.openChain(dir, "c.img", null, false));
            r = QemuTools.check(dir, "c.img");
            assertThat(r.exitCode()).as(r.describe()).isZero();
        } else {
            assertThat(r.exitCode()).as(r.describe()).isIn(0, 3);
        }
    }

    /**
     * Replays the child's log on a model of the disk (a discard turns the whole clusters it covers into zero clusters:
     * a version 3 image without a backing file; partly covered clusters keep their data) and compares qemu-img's view
     * of the image: equal outside the next request's range, and inside it each byte either the model's or the next
     * request's, which may have been in flight.
     */
    private void assertContentIsEveryCompletedRequest(int seed, int cs) throws Exception {
        QemuTools.toRaw(dir, "c.img", "c.raw");
        byte[] disk = Files.readAllBytes(dir.resolve("c.raw"));
        byte[] model = new byte[disk.length];
        List<String> lines = Files.readAllLines(dir.resolve("ops.log"), StandardCharsets.US_ASCII);
        int complete = 0;
        for (String line : lines) {
            String[] f = line.split(" ");
            if (f.length != 4) {
                break; // a line cut by the kill: its request returned, its log line did not land whole
            }
            long off = Long.parseLong(f[1]);
            int len = Integer.parseInt(f[2]);
            int op = Integer.parseInt(f[0]);
            if (op == 1) {
                long end = off + len;
                for (long c = (off + cs - 1) / cs * cs; c < end; c += cs) {
                    long cEnd = Math.min(c + cs, model.length);
                    if (end >= cEnd) {
                        Arrays.fill(model, (int) c, (int) cEnd, (byte) 0);
                    }
                }
            } else {
                Arrays.fill(model, (int) off, (int) off + len, op >= 2 ? Byte.parseByte(f[3]) : 0);
            }
            complete++;
        }
        assertThat(complete).as("requests completed before the kill").isPositive();
        // the request after the last logged one, regenerated from the child's seed (it may be partly written)
        Random rnd = new Random(seed);
        long size = disk.length;
        long nextOff = 0;
        int nextLen = 0;
        byte nextValue = 0;
        for (int i = 0; i <= complete; i++) {
            long off = rnd.nextLong(size);
            int len = (int) Math.min(size - off, 1 + rnd.nextInt(200_000));
            int op = rnd.nextInt(4);
            nextOff = off;
            nextLen = len;
            nextValue = op >= 2 ? (byte) (1 + i % 250) : 0;
        }
        for (int i = 0; i < disk.length; i++) {
            boolean inFlight = i >= nextOff && i < nextOff + nextLen;
            if (disk[i] != model[i] && !(inFlight && disk[i] == nextValue)) {
                throw new AssertionError("byte " + i + " reads " + disk[i] + ", expected " + model[i]
                        + (inFlight ? " or " + nextValue + " (the request in flight)" : "") + " after " + complete
                        + " completed requests");
            }
        }
    }
}
