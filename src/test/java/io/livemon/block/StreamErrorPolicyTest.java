package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.livemon.image.Images;
import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The on-error policies of a stream that meets a read error (QEMU's transcript 14, driven through the API). */
class StreamErrorPolicyTest {
    @TempDir
    Path dir;
    BlockGraph graph;
    final List<Event> events = new CopyOnWriteArrayList<>();

    @BeforeEach
    void setUp() {
        SeedChain.create(dir, "32M");
        SeedChain.snapshotContent(dir, "file-E.img", "before.raw");
        graph = new BlockGraph(dir);
        graph.events().subscribe(events::add);
    }

    @AfterEach
    void tearDown() {
        graph.close();
    }

    private void attachFaulty(int failures, String message) throws Exception {
        FaultyImage top = new FaultyImage(Images.openChain(dir, "file-E.img", "qcow2", false), 10L << 20, 1 << 20,
                failures, message);
        graph.addOpenedDrive(DriveOptions.parse("file=file-E.img,if=none,id=virtio0,node-name=node-E"), top);
    }

    private StreamRequest request(OnErrorPolicy policy, boolean autoDismiss) {
        return new StreamRequest("job0", "virtio0", null, null, null, 0, policy, true, autoDismiss);
    }

    private List<String> sequence() {
        return events.stream().map(e -> switch (e.name()) {
            case "JOB_STATUS_CHANGE" -> (String) e.data().get("status");
            case "BLOCK_JOB_ERROR" -> "ERROR " + e.data().get("operation") + " " + e.data().get("action");
            default -> e.name();
        }).collect(Collectors.toList());
    }

    private void assertChainAndContentUnchanged() {
        graph.close();
        assertThat(QemuTools.qemuImg(dir, "info", "file-E.img").stdout()).contains("backing file: file-D.img");
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").exitCode()).isZero();
        SeedChain.assertAllClean(dir);
    }

    @Test
    void reportFailsTheJobAndKeepsTheChain() throws Exception {
        attachFaulty(Integer.MAX_VALUE, "pread failed");
        StreamJob.start(graph, request(OnErrorPolicy.REPORT, false));
        Job job = graph.job("job0");
        await().until(() -> job.status() == JobStatus.CONCLUDED);
        assertThat(sequence()).containsExactly("created", "running", "ERROR read report", "aborting",
                "BLOCK_JOB_COMPLETED", "concluded");
        Event done = events.stream().filter(e -> e.name().equals("BLOCK_JOB_COMPLETED")).findFirst().orElseThrow();
        assertThat(done.data()).containsEntry("error", "Input/output error");
        assertThat(done.data().keySet()).containsExactly("device", "len", "offset", "speed", "type", "error");
        assertThat(job.info().error()).isEqualTo("Input/output error");
        job.dismiss();
        assertChainAndContentUnchanged();
    }

    @Test
    void stopPausesWithIoStatusFailedAndResumeRetries() throws Exception {
        attachFaulty(2, "pread failed");
        StreamJob.start(graph, request(OnErrorPolicy.STOP, true));
        Job job = graph.job("job0");
        await().until(() -> job.status() == JobStatus.PAUSED);
        assertThat(job.info().ioStatus()).isEqualTo("failed");
        assertThat(job.info().paused()).isTrue();
        assertThatThrownBy(() -> job.cancel(false))
                .hasMessage("The block job for device 'job0' is currently paused");
        events.clear();
        job.resume();
        // The retry fails again (second failure): back to paused.
        await().until(() -> sequence().contains("paused"));
        assertThat(sequence()).startsWith("running", "ERROR read stop", "paused");
        job.resume();
        assertThat(graph.awaitNoJobs(30_000)).isTrue();
        assertThat(sequence()).contains("BLOCK_JOB_COMPLETED");
        assertThat(events.stream().filter(e -> e.name().equals("BLOCK_JOB_COMPLETED")))
                .allMatch(e -> !e.data().containsKey("error"));
        graph.close();
        assertThat(QemuTools.qemuImg(dir, "info", "file-E.img").stdout()).doesNotContain("backing file:");
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").exitCode()).isZero();
    }

    @Test
    void stoppedJobCancelledWithForce() throws Exception {
        attachFaulty(Integer.MAX_VALUE, "pread failed");
        StreamJob.start(graph, request(OnErrorPolicy.STOP, true));
        Job job = graph.job("job0");
        await().until(() -> job.status() == JobStatus.PAUSED);
        job.cancel(true);
        assertThat(graph.awaitNoJobs(10_000)).isTrue();
        assertThat(sequence()).endsWith("running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null");
        assertChainAndContentUnchanged();
    }

    @Test
    void ignoreGoesOnButTheJobStillEndsWithTheError() throws Exception {
        attachFaulty(Integer.MAX_VALUE, "pread failed");
        StreamJob.start(graph, request(OnErrorPolicy.IGNORE, true));
        assertThat(graph.awaitNoJobs(30_000)).isTrue();
        assertThat(sequence()).contains("ERROR read ignore");
        Event done = events.stream().filter(e -> e.name().equals("BLOCK_JOB_COMPLETED")).findFirst().orElseThrow();
        assertThat(done.data()).containsEntry("error", "Input/output error").containsEntry("offset", 32L << 20);
        assertChainAndContentUnchanged();
    }

    @Test
    void enospcStopsOnlyWhenTheDiskIsFull() throws Exception {
        attachFaulty(1, "No space left on device");
        StreamJob.start(graph, request(OnErrorPolicy.ENOSPC, true));
        Job job = graph.job("job0");
        await().until(() -> job.status() == JobStatus.PAUSED);
        assertThat(sequence()).contains("ERROR read stop");
        job.resume();
        assertThat(graph.awaitNoJobs(30_000)).isTrue();
        graph.close();
        assertThat(QemuTools.compare(dir, "before.raw", "file-E.img").exitCode()).isZero();
    }

    @Test
    void enospcReportsOtherErrors() throws Exception {
        attachFaulty(1, "pread failed");
        StreamJob.start(graph, request(OnErrorPolicy.ENOSPC, true));
        assertThat(graph.awaitNoJobs(30_000)).isTrue();
        assertThat(sequence()).contains("ERROR read report");
        assertChainAndContentUnchanged();
    }
}
