package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** drive-mirror and drive-backup through the typed API, checked with qemu-img: content, chains, health, events. */
class MirrorBackupJobTest {
    private static final long SIZE = 32L << 20;
    /** Bytes allocated somewhere in the seed chain: 0-13M and 20-22M. */
    private static final long ALLOCATED = 15L << 20;

    @TempDir
    Path dir;
    BlockGraph graph;
    final List<Event> events = new CopyOnWriteArrayList<>();
    final List<String> stdout = new CopyOnWriteArrayList<>();

    @BeforeEach
    void setUp() throws Exception {
        SeedChain.create(dir, "32M");
        SeedChain.snapshotContent(dir, "file-E.img", "before.raw");
        graph = new BlockGraph(dir);
        graph.events().subscribe(events::add);
        graph.addDrive(DriveOptions.parse(SeedChain.DRIVE));
    }

    @AfterEach
    void tearDown() {
        graph.close();
    }

    private List<String> sequence() {
        return events.stream()
                .map(e -> e.name().equals("JOB_STATUS_CHANGE") ? (String) e.data().get("status") : e.name())
                .collect(Collectors.toList());
    }

    private Event event(String name) {
        return events.stream().filter(e -> e.name().equals(name)).findFirst().orElseThrow();
    }

    private MirrorJob mirror(String target, String sync, long speed) throws BlockException {
        return MirrorJob.start(graph, new MirrorJob.Request(null, "virtio0", target, "qcow2", null, sync, false,
                speed, 0, 0, OnErrorPolicy.REPORT, OnErrorPolicy.REPORT, true, true, false), stdout::add);
    }

    private BackupJob backup(String target, String sync, long speed) throws BlockException {
        return BackupJob.start(graph, new BackupJob.Request(null, "virtio0", target, "qcow2", sync, false, speed,
                null, null, false, OnErrorPolicy.REPORT, OnErrorPolicy.REPORT, true, true), stdout::add);
    }

    private void awaitReady() {
        await().atMost(Duration.ofSeconds(20)).until(() -> sequence().contains("BLOCK_JOB_READY"));
    }

    private String backingOf(String image) {
        String info = QemuTools.qemuImg(dir, "info", "-U", image).stdout();
        return info.lines().filter(l -> l.startsWith("backing file:")).findFirst().orElse("none");
    }

    private void assertSame(String a, String b) {
        assertThat(QemuTools.compare(dir, a, b).exitCode()).as("qemu-img compare %s %s", a, b).isZero();
    }

    private BlockNode root() {
        return graph.device("virtio0").root();
    }

    @Test
    void fullMirrorPivotsToAStandaloneCopy() throws Exception {
        mirror("file-M.img", "full", 0);
        assertThat(stdout).containsExactly("Formatting 'file-M.img', fmt=qcow2 cluster_size=65536 extended_l2=off"
                + " compression_type=zlib size=33554432 lazy_refcounts=off refcount_bits=16");
        assertThat(root().driver()).isEqualTo("mirror_top");
        assertThatThrownBy(() -> mirror("other.img", "full", 0)).hasMessage("Need a root block node");
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("node-C", 0, null)))
                .hasMessage("Node 'node-C' is busy: block device is in use by block job: mirror");
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, null)))
                .hasMessage("Need a root block node");
        awaitReady();
        graph.job("virtio0").complete();
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "ready", "BLOCK_JOB_READY", "waiting",
                "pending", "BLOCK_JOB_COMPLETED", "concluded", "null");
        assertThat(event("BLOCK_JOB_READY").data()).containsEntry("len", ALLOCATED).containsEntry("offset", ALLOCATED)
                .containsEntry("type", "mirror");
        assertThat(root().name()).startsWith("#block");
        assertThat(root().filename()).isEqualTo("file-M.img");
        assertThat(root().backing()).isNull();
        assertThat(graph.nodes()).extracting(BlockNode::name).doesNotContain("node-E", "node-A");
        assertThat(graph.nodes()).hasSize(2);
        graph.close();
        assertThat(backingOf("file-M.img")).isEqualTo("none");
        assertSame("before.raw", "file-M.img");
        QemuTools.assertClean(dir, "file-M.img");
        SeedChain.assertAllClean(dir);
    }

    @Test
    void topMirrorKeepsTheSourcesBackingChain() throws Exception {
        mirror("top.qcow2", "top", 0);
        assertThat(stdout.get(0)).contains("backing_file=file-D.img backing_fmt=qcow2");
        awaitReady();
        assertThat(event("BLOCK_JOB_READY").data()).containsEntry("len", (1L << 20) + 65536); // E: 12M-13M, 21M+64k
        graph.job("virtio0").complete();
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(root().backing().name()).isEqualTo("node-D");
        assertThat(root().chainDepth()).isEqualTo(4);
        assertThat(graph.findNode("node-E")).isNull();
        graph.close();
        assertThat(backingOf("top.qcow2")).isEqualTo("backing file: file-D.img");
        assertSame("before.raw", "top.qcow2");
        QemuTools.assertClean(dir, "top.qcow2");
        SeedChain.assertAllClean(dir);
    }

    @Test
    void cancelWhenReadyCompletesWithoutPivotAndForceCancels() throws Exception {
        mirror("m2.qcow2", "full", 0);
        awaitReady();
        graph.job("virtio0").cancel(false);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsSubsequence("ready", "BLOCK_JOB_READY", "waiting", "pending",
                "BLOCK_JOB_COMPLETED", "concluded", "null").doesNotContain("BLOCK_JOB_CANCELLED");
        assertThat(root().name()).isEqualTo("node-E");
        events.clear();
        mirror("m3.qcow2", "full", 0);
        awaitReady();
        graph.job("virtio0").cancel(true);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "ready", "BLOCK_JOB_READY", "aborting",
                "BLOCK_JOB_CANCELLED", "concluded", "null");
        assertThat(root().name()).isEqualTo("node-E");
        assertThat(graph.nodes()).extracting(BlockNode::filename).doesNotContain("m2.qcow2", "m3.qcow2");
        graph.close();
        assertSame("before.raw", "m2.qcow2");
        QemuTools.assertClean(dir, "m2.qcow2");
        QemuTools.assertClean(dir, "m3.qcow2");
        SeedChain.assertAllClean(dir);
    }

    @Test
    void completeOnARunningMirrorIsRefusedAndLenStartsAtZero() throws Exception {
        MirrorJob job = mirror("slow.qcow2", "full", 64 * 1024);
        assertThat(job.info().len()).isLessThan(ALLOCATED);
        assertThatThrownBy(job::complete)
                .hasMessage("Job 'virtio0' in state 'running' cannot accept command verb 'complete'");
        job.cancel(false);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).contains("BLOCK_JOB_CANCELLED");
    }

    /** Random guest writes while the mirror copies, while it is ready and across the pivot: none may be lost. */
    @Test
    void guestWritesDuringMirrorEndUpInTheTarget() throws Exception {
        byte[] model = Files.readAllBytes(dir.resolve("before.raw"));
        // ~0.5 s of initial copy at 32 MiB/s; the writer dirties ~10 MB/s, so the mirror converges and writes race
        // the copy both before and after READY
        MirrorJob job = mirror("live.qcow2", "full", 32L << 20);
        AtomicBoolean stop = new AtomicBoolean();
        java.util.concurrent.atomic.AtomicInteger writes = new java.util.concurrent.atomic.AtomicInteger();
        List<Throwable> failures = new CopyOnWriteArrayList<>();
        Thread writer = new Thread(() -> {
            Random rnd = new Random(42);
            try {
                while (!stop.get()) {
                    int len = 512 * (1 + rnd.nextInt(128));
                    long off = 512L * rnd.nextInt((int) ((SIZE - len) / 512));
                    byte[] data = new byte[len];
                    rnd.nextBytes(data);
                    root().write(off, data, 0, len); // the drive's current root, as a guest device would use
                    System.arraycopy(data, 0, model, (int) off, len);
                    writes.incrementAndGet();
                    Thread.sleep(5);
                }
            } catch (Throwable t) {
                failures.add(t);
            }
        });
        writer.start();
        awaitReady();
        Thread.sleep(200);
        job.complete(); // the writer keeps going across the pivot
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        Thread.sleep(100);
        stop.set(true);
        writer.join();
        assertThat(failures).isEmpty();
        assertThat(writes.get()).isGreaterThan(50);
        assertThat(root().filename()).isEqualTo("live.qcow2");
        graph.close();
        Files.write(dir.resolve("model.raw"), model);
        assertSame("model.raw", "live.qcow2");
        QemuTools.assertClean(dir, "live.qcow2");
    }

    @Test
    void backupIsAPointInTimeCopyWhileTheGuestWrites() throws Exception {
        byte[] model = Files.readAllBytes(dir.resolve("before.raw"));
        BackupJob job = backup("backup.qcow2", "full", 8L << 20);
        assertThat(sequence()).containsExactly("created", "running", "paused", "running");
        assertThat(root().driver()).isEqualTo("copy-before-write");
        Random rnd = new Random(7);
        List<long[]> written = new ArrayList<>();
        while (job.status() == JobStatus.RUNNING && written.size() < 400) {
            int len = 512 * (1 + rnd.nextInt(256));
            long off = 512L * rnd.nextInt((int) ((SIZE - len) / 512));
            byte[] data = new byte[len];
            rnd.nextBytes(data);
            root().write(off, data, 0, len);
            System.arraycopy(data, 0, model, (int) off, len);
            written.add(new long[] {off, len});
        }
        assertThat(written.size()).isGreaterThan(10);
        assertThat(graph.awaitNoJobs(20_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "paused", "running", "waiting", "pending",
                "BLOCK_JOB_COMPLETED", "concluded", "null");
        assertThat(event("BLOCK_JOB_COMPLETED").data()).containsEntry("len", SIZE).containsEntry("offset", SIZE)
                .containsEntry("type", "backup");
        assertThat(root().name()).isEqualTo("node-E");
        graph.close();
        Files.write(dir.resolve("model.raw"), model);
        assertSame("before.raw", "backup.qcow2");
        assertSame("model.raw", "file-E.img");
        QemuTools.assertClean(dir, "backup.qcow2");
        SeedChain.assertAllClean(dir);
    }

    @Test
    void backupSyncTopAndNone() throws Exception {
        backup("top.qcow2", "top", 0);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(backingOf("top.qcow2")).isEqualTo("backing file: file-D.img");
        String map = QemuTools.qemuImg(dir, "map", "-U", "--output=json", "top.qcow2").stdout();
        assertThat(map.lines().filter(l -> l.contains("\"depth\": 0") && l.contains("\"data\": true")).count())
                .isEqualTo(2); // only E's own data
        events.clear();
        BackupJob none = backup("none.qcow2", "none", 0);
        assertThat(backingOf("none.qcow2")).isEqualTo("backing file: file-E.img");
        byte[] data = new byte[3 << 20];
        java.util.Arrays.fill(data, (byte) 0x5a);
        root().write(11L << 20, data, 0, data.length);
        root().writeZeroes(20L << 20, 1L << 20);
        Thread.sleep(100);
        assertThat(none.info().offset()).isEqualTo(4L << 20);
        none.cancel(false);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "paused", "running", "aborting",
                "BLOCK_JOB_CANCELLED", "concluded", "null");
        graph.close();
        assertSame("before.raw", "top.qcow2");
        assertSame("before.raw", "none.qcow2"); // old data of what the guest changed, the rest through file-E
        QemuTools.assertClean(dir, "none.qcow2");
        SeedChain.assertAllClean(dir);
    }

    @Test
    void qemusErrors() throws Exception {
        assertThatThrownBy(() -> MirrorJob.start(graph, MirrorJob.Request.hmp("virtio0", "missing.qcow2", "qcow2",
                true, false), stdout::add)).hasMessage("Could not open 'missing.qcow2': No such file or directory");
        assertThatThrownBy(() -> MirrorJob.start(graph, MirrorJob.Request.hmp("virtio0", "raw.img", "raw", false,
                false), stdout::add)).hasMessage("Backing file not supported for file format 'raw'");
        assertThatThrownBy(() -> MirrorJob.start(graph, MirrorJob.Request.hmp("node-D", "x.img", null, false,
                false), stdout::add)).hasMessage("Need a root block node");
        assertThatThrownBy(() -> BackupJob.start(graph, new BackupJob.Request(null, "virtio0", "inc.qcow2", null,
                "incremental", false, 0, null, null, false, OnErrorPolicy.REPORT, OnErrorPolicy.REPORT, true, true), stdout::add))
                .hasMessage("must provide a valid bitmap name for 'incremental' sync mode");
        assertThat(Files.exists(dir.resolve("inc.qcow2"))).isTrue(); // created before the check, as QEMU does
        assertThat(stdout).noneMatch(l -> l.contains("raw.img") || l.contains("missing"));
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 64 * 1024, null));
        assertThatThrownBy(() -> backup("b.qcow2", "full", 0))
                .hasMessage("Node 'virtio0' is busy: block device is in use by block job: stream");
        assertThatThrownBy(() -> mirror("m.qcow2", "full", 0)).hasMessage("Need a root block node");
        assertThat(Files.exists(dir.resolve("b.qcow2"))).isFalse();
        graph.job("virtio0").cancel(true);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(graph.nodes()).extracting(BlockNode::filename).doesNotContain("inc.qcow2", "b.qcow2");
    }
}
