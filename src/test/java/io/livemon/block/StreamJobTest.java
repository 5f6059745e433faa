package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** block_stream through the typed API, checked with qemu-img: chain, content, health, events. */
class StreamJobTest {
    @TempDir
    Path dir;
    BlockGraph graph;
    final List<Event> events = new CopyOnWriteArrayList<>();

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

    private void streamAndWait(StreamRequest r) throws Exception {
        StreamJob.start(graph, r);
        assertThat(graph.awaitNoJobs(30_000)).isTrue();
    }

    private String backingOf(String image) {
        String info = QemuTools.qemuImg(dir, "info", "-U", image).stdout();
        return info.lines().filter(l -> l.startsWith("backing file:")).findFirst().orElse("none");
    }

    private void assertContentUnchanged() {
        graph.close();
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").exitCode()).isZero();
        SeedChain.assertAllClean(dir);
    }

    @Test
    void streamingTheWholeChainLeavesTheTopStandalone() throws Exception {
        streamAndWait(StreamRequest.hmp("virtio0", 0, null));
        assertThat(backingOf("file-E.img")).isEqualTo("none");
        assertThat(graph.nodes()).extracting(BlockNode::name).doesNotContain("node-A", "node-D");
        assertContentUnchanged();
    }

    @Test
    void streamingDownToABaseKeepsTheBase() throws Exception {
        streamAndWait(StreamRequest.hmp("virtio0", 0, "file-A.img"));
        assertThat(backingOf("file-E.img")).isEqualTo("backing file: file-A.img");
        assertThat(graph.device("virtio0").root().chainDepth()).isEqualTo(1);
        assertContentUnchanged();
    }

    @Test
    void aStreamWithNothingBetweenTargetAndBaseEndsAtOnceWhateverItsSpeed() throws Exception {
        // QEMU 7.2 (recorded over QMP): BLOCK_JOB_COMPLETED with len 0 and offset 0 right away, at 2 KiB/s
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 2048, "file-D.img"));
        assertThat(graph.awaitNoJobs(5_000)).isTrue();
        Event done = events.stream().filter(e -> e.name().equals("BLOCK_JOB_COMPLETED")).findFirst().orElseThrow();
        assertThat(done.data()).containsEntry("len", 0L).containsEntry("offset", 0L);
        assertContentUnchanged();
    }

    @Test
    void streamingIntoAnIntermediateNodeRepointsItAndKeepsItReadOnly() throws Exception {
        streamAndWait(StreamRequest.hmp("node-D", 0, "file-B.img"));
        assertThat(backingOf("file-D.img")).isEqualTo("backing file: file-B.img");
        assertThat(graph.findNode("node-D").readOnly()).isTrue();
        assertThat(graph.findNode("node-C")).isNull();
        assertContentUnchanged();
    }

    @Test
    void baseByNodeNameAndQemusErrors() throws Exception {
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, "nosuch.img")))
                .hasMessage("Can't find 'nosuch.img' in the backing chain");
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("nosuch", 0, null)))
                .hasMessage("Cannot find device='nosuch' nor node-name='nosuch'");
        assertThatThrownBy(() -> StreamJob.start(graph, new StreamRequest(null, "node-D", null, "node-E", null, 0,
                OnErrorPolicy.REPORT, true, true))).hasMessage("Node 'node-E' is not a backing image of 'node-D'");
        streamAndWait(new StreamRequest(null, "virtio0", null, "node-C", null, 0, OnErrorPolicy.REPORT, true,
                true));
        assertThat(backingOf("file-E.img")).isEqualTo("backing file: file-C.img");
        assertContentUnchanged();
    }

    @Test
    void aNegativeSpeedIsRefusedAfterTheJobWasCreated() {
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", -1, null)))
                .hasMessage("Parameter 'speed' expects a non-negative value");
        assertThat(events).extracting(e -> e.data().get("status")).containsExactly("created", "null");
        assertThat(graph.hasJobs()).isFalse();
        assertThat(graph.device("virtio0").root().name()).isEqualTo("node-E");
        assertThat(graph.findNode("node-E").readOnly()).isFalse();
    }

    @Test
    void aSecondJobOnTheChainIsBusy() throws Exception {
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 64 * 1024, null));
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, null)))
                .hasMessage("Node 'virtio0' is busy: block device is in use by block job: stream");
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("node-C", 0, null)))
                .hasMessage("Node 'node-C' is busy: block device is in use by block job: stream");
        graph.job("virtio0").cancel(false);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(backingOf("file-E.img")).isEqualTo("backing file: file-D.img");
        assertContentUnchanged();
    }

    @Test
    void eventsFollowQemusSequenceOnSuccess() throws Exception {
        streamAndWait(StreamRequest.hmp("virtio0", 0, null));
        List<String> seq = events.stream()
                .map(e -> e.name().equals("JOB_STATUS_CHANGE") ? (String) e.data().get("status") : e.name())
                .collect(Collectors.toList());
        assertThat(seq).containsExactly("created", "running", "waiting", "pending", "BLOCK_JOB_COMPLETED",
                "concluded", "null");
        Event done = events.stream().filter(e -> e.name().equals("BLOCK_JOB_COMPLETED")).findFirst().orElseThrow();
        assertThat(done.data()).containsEntry("device", "virtio0").containsEntry("len", 32L << 20)
                .containsEntry("offset", 32L << 20).containsEntry("type", "stream");
        assertThat(done.data().keySet()).containsExactly("device", "len", "offset", "speed", "type");
    }

    @Test
    void pauseResumeCancelFollowTheVerbTable() throws Exception {
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 64 * 1024, null));
        Job job = graph.job("virtio0");
        job.pause();
        assertThatThrownBy(job::pause).hasMessage("Job is already paused");
        org.awaitility.Awaitility.await().until(() -> job.status() == JobStatus.PAUSED);
        assertThatThrownBy(() -> job.cancel(false))
                .hasMessage("The block job for device 'virtio0' is currently paused");
        assertThatThrownBy(job::complete)
                .hasMessage("Job 'virtio0' in state 'paused' cannot accept command verb 'complete'");
        job.resume();
        assertThatThrownBy(job::resume).hasMessage("Can't resume a job that was not paused");
        job.setSpeed(0);
        assertThat(graph.awaitNoJobs(30_000)).isTrue();
        assertThat(events.stream().map(e -> String.valueOf(e.data().get("status")))).contains("paused");
        assertThat(backingOf("file-E.img")).isEqualTo("none");
        assertContentUnchanged();
    }

    @Test
    void pausingRightAfterAResumePausesTheJobAgain() throws Exception {
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 64 * 1024, null));
        Job job = graph.job("virtio0");
        java.time.Duration poll = java.time.Duration.ofMillis(1);
        for (int i = 0; i < 50; i++) {
            job.pause();
            org.awaitility.Awaitility.await().pollInterval(poll).until(() -> job.status() == JobStatus.PAUSED);
            job.resume();
            // the job thread may not have woken from the first pause yet
            job.pause();
            org.awaitility.Awaitility.await().pollInterval(poll).atMost(java.time.Duration.ofSeconds(5))
                    .until(() -> job.status() == JobStatus.PAUSED);
            job.resume();
        }
        job.cancel(false);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertContentUnchanged();
    }

    @Test
    void cancellingAPausedJobWithForceReportsRunningThenAborting() throws Exception {
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 64 * 1024, null));
        Job job = graph.job("virtio0");
        job.pause();
        org.awaitility.Awaitility.await().until(() -> job.status() == JobStatus.PAUSED);
        events.clear();
        job.cancel(true);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        List<String> seq = events.stream()
                .map(e -> e.name().equals("JOB_STATUS_CHANGE") ? (String) e.data().get("status") : e.name())
                .collect(Collectors.toList());
        assertThat(seq).containsExactly("running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null");
        assertContentUnchanged();
    }

    @Test
    void manualFinalizeAndDismissKeepTheChainUntilFinalized() throws Exception {
        StreamJob.start(graph, new StreamRequest("job0", "virtio0", null, null, null, 0, OnErrorPolicy.REPORT,
                false, false));
        Job job = graph.job("job0");
        org.awaitility.Awaitility.await().until(() -> job.status() == JobStatus.PENDING);
        assertThat(backingOf("file-E.img")).isEqualTo("backing file: file-D.img");
        assertThatThrownBy(job::dismiss)
                .hasMessage("Job 'job0' in state 'pending' cannot accept command verb 'dismiss'");
        job.finalizeJob();
        org.awaitility.Awaitility.await().until(() -> job.status() == JobStatus.CONCLUDED);
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, null)))
                .hasMessage("Node 'virtio0' is busy: block device is in use by block job: stream");
        job.dismiss();
        assertThat(graph.hasJobs()).isFalse();
        assertThat(events.stream().map(Event::name)).contains("BLOCK_JOB_PENDING");
        assertThat(backingOf("file-E.img")).isEqualTo("none");
        assertContentUnchanged();
    }

    @Test
    void aSnapshotOfANodeThatHasAnOverlayIsRefused() {
        assertThatThrownBy(() -> ExternalSnapshot.take(graph, null, "node-D", "x.qcow2", null, false, null, l -> { }))
                .hasMessage("Node 'node-D' is busy: node is used as backing hd of 'node-E'");
        assertThat(java.nio.file.Files.exists(dir.resolve("x.qcow2"))).isFalse();
    }

    @Test
    void closingStopsARunningJobKeptForDismissAndDismissesIt() throws Exception {
        StreamJob.start(graph, new StreamRequest("job0", "virtio0", null, null, null, 64 * 1024,
                OnErrorPolicy.REPORT, true, false));
        long t0 = System.nanoTime();
        graph.close();
        assertThat((System.nanoTime() - t0) / 1_000_000).as("close ms").isLessThan(5_000);
        assertThat(events.stream().map(e -> String.valueOf(e.data().get("status"))))
                .containsSubsequence("aborting", "concluded", "null");
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").exitCode()).isZero();
        SeedChain.assertAllClean(dir);
    }

    @Test
    void guestWritesRacingASnapshotNeitherFailNorGetLost() throws Exception {
        byte[] model = java.nio.file.Files.readAllBytes(dir.resolve("before.raw"));
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(1);
        Thread guest = new Thread(() -> {
            java.util.Random rnd = new java.util.Random(7);
            byte[] data = new byte[64 * 1024];
            try {
                for (int i = 0; i < 400; i++) {
                    long off = (long) rnd.nextInt(model.length / data.length) * data.length;
                    java.util.Arrays.fill(data, (byte) (i + 1));
                    // a guest sees its drive: the root of the moment, as qemu-io does per command
                    graph.device("virtio0").root().write(off, data, 0, data.length);
                    synchronized (model) {
                        System.arraycopy(data, 0, model, (int) off, data.length);
                    }
                    started.countDown();
                }
            } catch (Throwable t) {
                failure.set(t);
                started.countDown();
            }
        });
        guest.start();
        started.await();
        ExternalSnapshot.take(graph, "virtio0", null, "snap.qcow2", null, false, null, l -> { });
        guest.join();
        assertThat(failure.get()).isNull();
        assertThat(graph.findNode("node-E").readOnly()).isTrue();
        graph.close();
        java.nio.file.Files.write(dir.resolve("model.raw"), model);
        assertThat(QemuTools.compare(dir, "model.raw", "snap.qcow2").exitCode()).isZero();
        QemuTools.assertClean(dir, "snap.qcow2");
        SeedChain.assertAllClean(dir);
    }

    @Test
    void snapshotThenStreamIsALiveBlockCopy() throws Exception {
        List<String> stdout = new CopyOnWriteArrayList<>();
        ExternalSnapshot.take(graph, "virtio0", null, "copy.qcow2", null, false, null, stdout::add);
        assertThat(stdout).containsExactly("Formatting 'copy.qcow2', fmt=qcow2 cluster_size=65536 extended_l2=off "
                + "compression_type=zlib size=33554432 backing_file=file-E.img backing_fmt=qcow2 "
                + "lazy_refcounts=off refcount_bits=16");
        assertThat(graph.device("virtio0").root().filename()).isEqualTo("copy.qcow2");
        assertThat(graph.findNode("node-E").readOnly()).isTrue();
        streamAndWait(StreamRequest.hmp("virtio0", 0, null));
        graph.close();
        assertThat(backingOf("copy.qcow2")).isEqualTo("none");
        assertThat(QemuTools.compare(dir, "before.raw", "copy.qcow2").exitCode()).isZero();
        QemuTools.assertClean(dir, "copy.qcow2");
        SeedChain.assertAllClean(dir);
    }
}
