package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.image.BitmapDump;
import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import java.util.BitSet;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Persistent dirty bitmaps through the block jobs, as QEMU 7.2 keeps them: a commit writes into its base, so the
 * base's bitmap records what the job copied; a stream's copy-up does not change what the guest sees, so the top's
 * bitmap records only the guest's writes (qemu-system-x86_64 7.2 leaves it so too); the reopen read-only of the old
 * top that snapshot_blkdev and the end of a commit do writes the bitmaps back while livemon keeps running.
 */
class BitmapJobsTest {
    @TempDir
    Path dir;
    BlockGraph graph;

    @BeforeEach
    void setUp() {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        SeedChain.create(dir, "32M");
    }

    @AfterEach
    void tearDown() {
        if (graph != null) {
            graph.close();
        }
    }

    private void open() throws BlockException {
        graph = new BlockGraph(dir);
        graph.addDrive(DriveOptions.parse(SeedChain.DRIVE));
    }

    private BitmapDump.Bitmap bitmap(String file, String name) throws Exception {
        return BitmapDump.read(dir.resolve(file)).get(name);
    }

    private static BitSet granules(long... ranges) {
        BitSet s = new BitSet();
        for (int i = 0; i < ranges.length; i += 2) {
            BitmapDump.touch(s, 16, ranges[i], ranges[i + 1] - ranges[i]);
        }
        return s;
    }

    @Test
    void commitRecordsWhatItWritesIntoTheBase() throws Exception {
        QemuTools.qemuImg(dir, "bitmap", "--add", "file-A.img", "backup");
        open();
        CommitJob.start(graph, new CommitJob.Request(null, "virtio0", "node-A", null, "node-C", null, null, 0,
                OnErrorPolicy.REPORT, true, true));
        assertThat(graph.awaitNoJobs(20_000)).isTrue();
        // the job's end reopened A read-only: its bitmap is on disk, consistent, while livemon still runs
        assertThat(graph.findNode("node-A").readOnly()).isTrue();
        BitmapDump.Bitmap b = bitmap("file-A.img", "backup");
        assertThat(b.inUse()).isFalse();
        // B and C held 1M-2.5M and 6M-10M above A (SeedChain)
        assertThat(b.dirty()).isEqualTo(granules(1L << 20, 2560L << 10, 6L << 20, 10L << 20));
        graph.close();
        graph = null;
        QemuTools.assertClean(dir, "file-A.img");
        assertThat(QemuTools.qemuImg(dir, "info", "--output=json", "file-A.img").stdout().replaceAll("\\s+", ""))
                .contains("\"flags\":[\"auto\"],\"name\":\"backup\"");
    }

    @Test
    void streamRecordsTheGuestWritesButNotTheCopyUp() throws Exception {
        QemuTools.qemuImg(dir, "bitmap", "--add", "file-E.img", "backup");
        open();
        byte[] data = new byte[4096];
        graph.device("virtio0").root().write(30L << 20, data, 0, data.length);
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, null));
        assertThat(graph.awaitNoJobs(20_000)).isTrue();
        graph.device("virtio0").root().writeZeroes(0, 65536);
        graph.close();
        graph = null;
        BitmapDump.Bitmap b = bitmap("file-E.img", "backup");
        assertThat(b.inUse()).isFalse();
        assertThat(b.dirty()).isEqualTo(granules(0, 65536, 30L << 20, (30L << 20) + 4096));
        QemuTools.assertClean(dir, "file-E.img");
    }

    @Test
    void snapshotWritesTheOldTopsBitmapsBack() throws Exception {
        QemuTools.qemuImg(dir, "bitmap", "--add", "file-E.img", "backup");
        open();
        graph.device("virtio0").root().write(5L << 20, new byte[512], 0, 512);
        assertThat(bitmap("file-E.img", "backup").inUse()).isTrue();
        ExternalSnapshot.take(graph, "virtio0", null, "snap.qcow2", null, false, null, l -> { });
        graph.device("virtio0").root().write(6L << 20, new byte[512], 0, 512); // lands in snap.qcow2
        BitmapDump.Bitmap b = bitmap("file-E.img", "backup");
        assertThat(b.inUse()).isFalse();
        assertThat(b.dirty()).isEqualTo(granules(5L << 20, (5L << 20) + 512));
        assertThat(QemuTools.check(dir, "file-E.img").exitCode()).isZero();
        graph.close();
        graph = null;
        assertThat(bitmap("file-E.img", "backup").dirty()).isEqualTo(granules(5L << 20, (5L << 20) + 512));
        QemuTools.assertClean(dir, "file-E.img");
        QemuTools.assertClean(dir, "snap.qcow2");
    }
}
