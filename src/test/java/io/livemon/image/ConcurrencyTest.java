package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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

import static org.assertj.core.api.Assertions.assertThat;

/** Several threads writing at once: disjoint ranges land exactly, overlapping ones look like one serial order. */
class ConcurrencyTest {
    @TempDir
    Path dir;

    @Test
    void concurrentWritersOnDisjointAndOverlappingRanges() throws Exception {
        int threads = 6;
        long size = 16L << 20;
        QemuTools.qemuImg(dir, "create", "-f", "qcow2", "-o", "cluster_size=4096", "base.img", "16M");
        QemuTools.qemuIo(dir, "base.img", "write -P 0x33 0 16M");
        Images.createQcow2(dir, "t.img", -1, Qcow2CreateOptions.withBacking("base.img", "qcow2").withClusterSize(4096));
        // the shared range: every write covers all of it with one thread's byte, so the result must be uniform
        long sharedOff = 15L << 20;
        int sharedLen = 300_000;
        Image img = Images.openChain(dir, "t.img", null, false, new Qcow2Image.Options(8192, 4096, true));
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        byte[][] regions = new byte[threads][];
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                final int id = t;
                fs.add(pool.submit(() -> {
                    Random rnd = new Random(100 + id);
                    long regionOff = (long) id * (2L << 20);
                    byte[] model = new byte[2 << 20];
                    Arrays.fill(model, (byte) 0x33);
                    byte[] shared = new byte[sharedLen];
                    Arrays.fill(shared, (byte) (0x40 + id));
                    for (int i = 0; i < 150; i++) {
                        int off = rnd.nextInt(model.length - 1);
                        int len = 1 + rnd.nextInt(Math.min(model.length - off, 20000));
                        if (rnd.nextInt(5) == 0) {
                            img.writeZeroes(regionOff + off, len);
                            Arrays.fill(model, off, off + len, (byte) 0);
                        } else {
                            byte[] d = new byte[len];
                            rnd.nextBytes(d);
                            img.write(regionOff + off, d, 0, len);
                            System.arraycopy(d, 0, model, off, len);
                        }
                        if (i % 10 == 0) {
                            img.write(sharedOff, shared, 0, sharedLen);
                        }
                        if (i % 25 == 0) {
                            byte[] back = new byte[model.length];
                            img.read(regionOff, back, 0, back.length);
                            assertThat(back).isEqualTo(model);
                        }
                    }
                    regions[id] = model;
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get(120, TimeUnit.SECONDS);
            }
            for (int t = 0; t < threads; t++) {
                byte[] back = new byte[2 << 20];
                img.read((long) t * (2L << 20), back, 0, back.length);
                assertThat(back).as("region " + t).isEqualTo(regions[t]);
            }
            byte[] shared = new byte[sharedLen];
            img.read(sharedOff, shared, 0, sharedLen);
            byte first = shared[0];
            assertThat(first).isBetween((byte) 0x40, (byte) (0x40 + threads - 1));
            for (byte b : shared) {
                assertThat(b).isEqualTo(first);
            }
        } finally {
            pool.shutdownNow();
            Images.closeChain(img);
        }
        QemuTools.assertClean(dir, "t.img");
        assertThat(Files.exists(dir.resolve("t.img"))).isTrue();
    }
}
