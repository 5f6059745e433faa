package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A guest writes random patterns (data, zeroes, discards) while a stream copies the backing data up: no guest
 * write may be lost or overwritten by stale backing data. The final image must equal a model of the writes.
 */
class StreamGuestLoadTest {
    @TempDir
    Path dir;

    @Test
    void guestWritesRacingAStreamAreNeverLost() throws Exception {
        for (long seed : new long[] {1, 2, 3}) {
            runOnce(seed);
        }
    }

    private void runOnce(long seed) throws Exception {
        Path d = Files.createDirectory(dir.resolve("seed" + seed));
        SeedChain.create(d, "32M");
        SeedChain.snapshotContent(d, "file-E.img", "model.raw");
        byte[] model = Files.readAllBytes(d.resolve("model.raw"));
        BlockGraph graph = new BlockGraph(d);
        try {
            graph.addDrive(DriveOptions.parse(SeedChain.DRIVE));
            BlockNode guest = graph.device("virtio0").root();
            // Slow enough that the writer runs during most of the copy.
            StreamJob.start(graph, StreamRequest.hmp("virtio0", 16L << 20, null));
            Random rnd = new Random(seed);
            int writes = 0;
            while (graph.hasJobs() || writes < 50) {
                long off = (long) rnd.nextInt(model.length / 512) * 512;
                int len = (1 + rnd.nextInt(256)) * 512;
                len = (int) Math.min(len, model.length - off);
                int op = rnd.nextInt(10);
                if (op < 7) {
                    byte[] data = new byte[len];
                    Arrays.fill(data, (byte) (1 + rnd.nextInt(255)));
                    data[0] = (byte) rnd.nextInt(256);
                    guest.write(off, data, 0, len);
                    System.arraycopy(data, 0, model, (int) off, len);
                } else {
                    guest.writeZeroes(off, len);
                    Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
                }
                writes++;
                if (writes == 5000) {
                    // enough racing writes: let the stream finish unthrottled (it may already be finishing, and
                    // a job that is waiting/pending or gone refuses set-speed)
                    try {
                        graph.job("virtio0").setSpeed(0);
                    } catch (BlockException e) {
                        // already done copying
                    }
                }
            }
            assertThat(graph.awaitNoJobs(30_000)).isTrue();
            byte[] seen = new byte[model.length];
            guest.read(0, seen, 0, seen.length);
            assertThat(firstDifference(seen, model)).as("seed %d: first differing byte", seed).isEqualTo(-1);
        } finally {
            graph.close();
        }
        Files.write(d.resolve("model.raw"), model);
        assertThat(QemuTools.compare(d, "model.raw", "file-E.img").describe())
                .as("seed %d", seed).contains("-> exit 0");
        QemuTools.assertClean(d, "file-E.img");
        assertThat(QemuTools.qemuImg(d, "info", "file-E.img").stdout()).doesNotContain("backing file:");
    }

    private static int firstDifference(byte[] a, byte[] b) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] != b[i]) {
                return i;
            }
        }
        return -1;
    }
}
