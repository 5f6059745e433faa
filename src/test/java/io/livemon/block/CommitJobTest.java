package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** block-commit through the typed API (intermediate and active commit), checked with qemu-img (transcript 06). */
class CommitJobTest {
    private static final long SIZE = 32L << 20;
    /** Bytes allocated above A in the seed chain: 1M-2.5M (B, C), 6M-13M (B, C, D, E), 21M+64k (E). */
    private static final long ABOVE_A = (1536L << 10) + (7L << 20) + 65536;

    @TempDir
    Path dir;
    BlockGraph graph;
    final List<Event> events = new CopyOnWriteArrayList<>();

    @BeforeEach
    void setUp() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        SeedChain.create(dir, "32M");
        SeedChain.snapshotContent(dir, "file-E.img", "before.raw");
        graph = new BlockGraph(dir);
        graph.events().subscribe(events::add);
        graph.addDrive(DriveOptions.parse(SeedChain.DRIVE));
    }

    @AfterEach
    void tearDown() {
        if (graph != null) {
            graph.close();
        }
    }

    private List<String> sequence() {
        return events.stream()
                .map(e -> e.name().equals("JOB_STATUS_CHANGE") ? (String) e.data().get("status") : e.name())
                .collect(Collectors.toList());
    }

    private Event event(String name) {
        return events.stream().filter(e -> e.name().equals(name)).findFirst().orElseThrow();
    }

    private CommitJob commit(String jobId, String topNode, String baseNode, long speed) throws BlockException {
        return CommitJob.start(graph, new CommitJob.Request(jobId, "virtio0", baseNode, null, topNode, null, null,
                speed, OnErrorPolicy.REPORT, true, true));
    }

    private CommitJob commit(CommitJob.Request r) throws BlockException {
        return CommitJob.start(graph, r);
    }

    private static CommitJob.Request req(String device, String baseNode, String base, String topNode, String top,
                                         String backingFile, String jobId, long speed) {
        return new CommitJob.Request(jobId, device, baseNode, base, topNode, top, backingFile, speed,
                OnErrorPolicy.REPORT, true, true);
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

    /** Transcript 06b: C and B into A, no READY; afterwards E -> D -> A, C and B untouched on disk. */
    @Test
    void intermediateCommitOfCAndBIntoA() throws Exception {
        CommitJob job = commit(null, "node-C", "node-A", 0);
        assertThat(job.id()).isEqualTo("virtio0");
        assertThat(job.isActive()).isFalse();
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "waiting", "pending", "BLOCK_JOB_COMPLETED",
                "concluded", "null");
        assertThat(event("BLOCK_JOB_COMPLETED").data()).containsEntry("device", "virtio0").containsEntry("len", SIZE)
                .containsEntry("offset", SIZE).containsEntry("speed", 0L).containsEntry("type", "commit")
                .doesNotContainKey("error");
        assertThat(root().name()).isEqualTo("node-E");
        assertThat(root().chainDepth()).isEqualTo(2);
        assertThat(root().backing().name()).isEqualTo("node-D");
        assertThat(root().backing().backing().name()).isEqualTo("node-A");
        assertThat(graph.findNode("node-C")).isNull();
        assertThat(graph.findNode("node-B")).isNull();
        assertThat(graph.nodes()).extracting(BlockNode::driver).doesNotContain("commit_top");
        assertThat(graph.findNode("node-A").readOnly()).isTrue();
        assertThat(graph.findNode("node-D").readOnly()).isTrue();
        graph.close();
        graph = null;
        assertThat(backingOf("file-E.img")).isEqualTo("backing file: file-D.img");
        assertThat(backingOf("file-D.img")).isEqualTo("backing file: file-A.img");
        assertThat(backingOf("file-C.img")).isEqualTo("backing file: file-B.img");
        assertThat(backingOf("file-B.img")).isEqualTo("backing file: file-A.img");
        assertSame("before.raw", "file-E.img");
        // A alone now holds what B and C held above it
        QemuTools.toRaw(dir, "file-C.img", "c.raw");
        assertSame("c.raw", "file-A.img");
        SeedChain.assertAllClean(dir);
    }

    /** While an intermediate commit runs: len, busy nodes, no complete; cancel leaves the chain as it was. */
    @Test
    void intermediateCommitRateLimitedBusyNodesAndCancel() throws Exception {
        CommitJob job = CommitJob.start(graph, req("virtio0", null, "file-A.img", null, "file-D.img", "./file-A.img", "i1",
                64 * 1024));
        assertThat(job.info().len()).isEqualTo(SIZE);
        assertThat(job.info().type()).isEqualTo(JobType.COMMIT);
        assertThat(graph.findNode("node-A").readOnly()).isFalse();
        assertThat(graph.nodes()).extracting(BlockNode::driver).contains("commit_top");
        assertThat(root().name()).isEqualTo("node-E");
        assertThatThrownBy(job::complete)
                .hasMessage("Job 'i1' in state 'running' cannot accept command verb 'complete'");
        assertThatThrownBy(() -> commit("x", null, null, 0)).hasMessage("Need a root block node");
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("node-A", 0, null)))
                .hasMessage("Node 'node-A' is busy: block device is in use by block job: commit");
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, null)))
                .hasMessage("Node 'virtio0' is busy: block device is in use by block job: commit");
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("node-C", 0, null)))
                .hasMessage("Node 'node-C' is busy: block device is in use by block job: commit");
        job.cancel(false);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "aborting", "BLOCK_JOB_CANCELLED", "concluded",
                "null");
        assertThat(root().chainDepth()).isEqualTo(4);
        assertThat(graph.findNode("node-A").readOnly()).isTrue();
        assertThat(graph.nodes()).extracting(BlockNode::driver).doesNotContain("commit_top");
        graph.close();
        graph = null;
        assertThat(backingOf("file-C.img")).isEqualTo("backing file: file-B.img");
        assertSame("before.raw", "file-E.img");
        SeedChain.assertAllClean(dir);
    }

    /** backing-file sets the overlay's header string (QMP only, intermediate commit only). */
    @Test
    void intermediateCommitWritesTheGivenBackingFileString() throws Exception {
        Path abs = dir.resolve("file-B.img").toAbsolutePath();
        commit(req("virtio0", "node-B", null, "node-D", null, abs.toString(), "i2", 0));
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(root().backing().name()).isEqualTo("node-B"); // E -> B -> A
        assertThat(graph.findNode("node-D")).isNull();
        assertThat(graph.findNode("node-C")).isNull();
        graph.close();
        graph = null;
        assertThat(backingOf("file-E.img")).isEqualTo("backing file: " + abs);
        assertThat(backingOf("file-D.img")).isEqualTo("backing file: file-C.img");
        assertSame("before.raw", "file-E.img");
        SeedChain.assertAllClean(dir);
    }

    /** Transcript 06c: active commit into A, READY, complete: the drive uses file-A.img alone. */
    @Test
    void activeCommitIntoAWithComplete() throws Exception {
        CommitJob job = commit("c1", null, null, 0);
        assertThat(job.isActive()).isTrue();
        assertThat(root().driver()).isEqualTo("mirror_top");
        awaitReady();
        assertThat(event("BLOCK_JOB_READY").data()).containsEntry("device", "c1").containsEntry("len", ABOVE_A)
                .containsEntry("offset", ABOVE_A).containsEntry("speed", 0L).containsEntry("type", "commit");
        assertThat(job.info().ready()).isTrue();
        job.complete();
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "ready", "BLOCK_JOB_READY", "waiting",
                "pending", "BLOCK_JOB_COMPLETED", "concluded", "null");
        assertThat(event("BLOCK_JOB_COMPLETED").data()).containsEntry("len", ABOVE_A).containsEntry("offset", ABOVE_A);
        assertThat(root().name()).isEqualTo("node-A");
        assertThat(root().filename()).isEqualTo("file-A.img");
        assertThat(root().backing()).isNull();
        assertThat(root().readOnly()).isFalse();
        assertThat(graph.nodes()).extracting(BlockNode::name).doesNotContain("node-E", "node-D", "node-C", "node-B");
        assertThat(graph.nodes()).hasSize(2);
        // the drive keeps working on A
        byte[] data = new byte[4096];
        java.util.Arrays.fill(data, (byte) 0x77);
        root().write(30L << 20, data, 0, data.length);
        graph.close();
        graph = null;
        assertThat(backingOf("file-A.img")).isEqualTo("none");
        assertThat(backingOf("file-E.img")).isEqualTo("backing file: file-D.img");
        assertThat(backingOf("file-B.img")).isEqualTo("backing file: file-A.img");
        QemuTools.qemuIo(dir, "file-E.img", "write -P 0x77 30M 4k"); // the same write, for the comparison
        SeedChain.snapshotContent(dir, "file-E.img", "expected.raw");
        assertSame("expected.raw", "file-A.img");
        SeedChain.assertAllClean(dir);
    }

    @Test
    void activeCommitCancelWhenReadyWithoutAndWithForce() throws Exception {
        commit(null, "node-E", null, 0);
        awaitReady();
        graph.job("virtio0").cancel(false);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "ready", "BLOCK_JOB_READY", "waiting",
                "pending", "BLOCK_JOB_COMPLETED", "concluded", "null");
        assertThat(root().name()).isEqualTo("node-E");
        assertThat(root().chainDepth()).isEqualTo(4);
        assertThat(graph.nodes()).extracting(BlockNode::driver).doesNotContain("mirror_top");
        assertThat(graph.findNode("node-A").readOnly()).isFalse(); // as QEMU 7.2: no reopen after a completed cancel
        events.clear();
        commit("c2", null, "node-B", 0);
        awaitReady();
        graph.job("c2").cancel(true);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "ready", "BLOCK_JOB_READY", "aborting",
                "BLOCK_JOB_CANCELLED", "concluded", "null");
        assertThat(root().name()).isEqualTo("node-E");
        assertThat(root().chainDepth()).isEqualTo(4);
        assertThat(graph.findNode("node-B").readOnly()).isTrue();
        graph.close();
        graph = null;
        assertSame("before.raw", "file-E.img");
        assertSame("before.raw", "file-A.img"); // A got everything above it: a consistent copy, no switch
        SeedChain.assertAllClean(dir);
    }

    @Test
    void activeCommitRunningIsCancelledAndLenGrowsFromZero() throws Exception {
        CommitJob job = commit("slow", null, null, 64 * 1024);
        assertThat(job.info().len()).isLessThanOrEqualTo(ABOVE_A);
        await().atMost(Duration.ofSeconds(5)).until(() -> job.info().len() == ABOVE_A);
        assertThatThrownBy(job::complete)
                .hasMessage("Job 'slow' in state 'running' cannot accept command verb 'complete'");
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("node-C", 0, null)))
                .hasMessage("Node 'node-C' is busy: block device is in use by block job: commit");
        assertThatThrownBy(() -> commit("x", "node-D", "node-A", 0)).hasMessage("Need a root block node");
        job.cancel(false);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).containsExactly("created", "running", "aborting", "BLOCK_JOB_CANCELLED", "concluded",
                "null");
        assertThat(root().name()).isEqualTo("node-E");
        assertThat(graph.findNode("node-A").readOnly()).isTrue();
    }

    /** Random guest writes while the active commit copies, while it is ready and across the switch-over. */
    @Test
    void guestWritesDuringActiveCommitEndUpInBase() throws Exception {
        byte[] model = Files.readAllBytes(dir.resolve("before.raw"));
        CommitJob job = commit("live", null, null, 32L << 20);
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger writes = new AtomicInteger();
        List<Throwable> failures = new CopyOnWriteArrayList<>();
        Thread writer = new Thread(() -> {
            Random rnd = new Random(42);
            try {
                while (!stop.get()) {
                    int len = 512 * (1 + rnd.nextInt(128));
                    long off = 512L * rnd.nextInt((int) ((SIZE - len) / 512));
                    byte[] data = new byte[len];
                    rnd.nextBytes(data);
                    graph.device("virtio0").root().write(off, data, 0, len);
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
        job.complete(); // the writer keeps going across the switch-over
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        Thread.sleep(100);
        stop.set(true);
        writer.join();
        assertThat(failures).isEmpty();
        assertThat(writes.get()).isGreaterThan(50);
        assertThat(root().name()).isEqualTo("node-A");
        graph.close();
        graph = null;
        Files.write(dir.resolve("model.raw"), model);
        assertSame("model.raw", "file-A.img");
        QemuTools.assertClean(dir, "file-A.img");
    }

    /** QEMU 7.2's refusals (checked against qemu-system-x86_64 7.2.22), in its order of checks. */
    @Test
    void refusalsAsQemu() throws Exception {
        assertThatThrownBy(() -> commit(req("nosuch", null, null, null, null, null, null, 0)))
                .hasMessage("Device 'nosuch' not found")
                .extracting(e -> ((BlockException) e).errorClass())
                .isEqualTo(BlockException.ErrorClass.DEVICE_NOT_FOUND);
        String[][] cases = {
            {"node-C", null, null, null, null, null, "Need a root block node"},
            {"virtio0", null, null, "nosuch", null, null, "Cannot find device='' nor node-name='nosuch'"},
            {"virtio0", "nosuch", null, null, null, null, "Cannot find device='' nor node-name='nosuch'"},
            {"virtio0", null, null, null, "nosuch.img", null, "Top image file nosuch.img not found"},
            {"virtio0", null, "nosuch.img", null, null, null, "Can't find 'nosuch.img' in the backing chain"},
            {"virtio0", null, null, "node-C", "file-C.img", null, "'top-node' and 'top' are mutually exclusive"},
            {"virtio0", "node-A", "file-A.img", null, null, null, "'base-node' and 'base' are mutually exclusive"},
            {"virtio0", "node-C", null, "node-B", null, null, "'node-C' is not in this backing file chain"},
            {"virtio0", "node-C", null, "node-C", null, null, "cannot commit an image into itself"},
            {"virtio0", null, null, "node-A", null, null, "cannot commit an image into itself"},
            {"virtio0", "node-E", null, null, null, null, "cannot commit an image into itself"},
            {"virtio0", null, null, null, null, "x.img", "'backing-file' specified, but 'top' is the active layer"},
        };
        for (String[] c : cases) {
            assertThatThrownBy(() -> commit(req(c[0], c[1], c[2], c[3], c[4], c[5], null, 0)))
                    .as("%s", String.join(",", java.util.Arrays.asList(c))).hasMessage(c[6]);
        }
        assertThatThrownBy(() -> commit(req("virtio0", null, null, null, null, null, "1bad", 0)))
                .hasMessage("Invalid job ID '1bad'");
        assertThat(events).isEmpty();
        assertThatThrownBy(() -> commit(req("virtio0", null, null, null, null, null, null, -1)))
                .hasMessage("Parameter 'speed' expects a non-negative value");
        assertThat(sequence()).containsExactly("created", "null");
        assertThat(graph.hasJobs()).isFalse();
        assertThat(root().name()).isEqualTo("node-E");
        assertThat(graph.findNode("node-A").readOnly()).isTrue();
        // a stream on an intermediate node: QEMU names the node it meets first walking down, the stream's filter
        StreamJob s = StreamJob.start(graph, new StreamRequest("s2", "node-C", null, null, null, 1024,
                OnErrorPolicy.REPORT, true, true));
        String filter = s.filter.name();
        assertThatThrownBy(() -> commit(null, null, null, 0))
                .hasMessage("Node '" + filter + "' is busy: block device is in use by block job: stream");
        assertThatThrownBy(() -> commit(null, "node-D", "node-C", 0))
                .hasMessage("Node '" + filter + "' is busy: block device is in use by block job: stream");
        s.cancel(true);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        // while a commit holds the active layer, the node name is no root either
        commit("c1", null, null, 1024);
        assertThatThrownBy(() -> CommitJob.start(graph, req("node-E", null, null, null, null, null, "c2", 0)))
                .hasMessage("Need a root block node");
    }
}
