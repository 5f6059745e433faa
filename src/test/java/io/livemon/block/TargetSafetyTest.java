package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.livemon.testsupport.QemuTools;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * No command that creates or reuses an image harms a file the user did not mean: every creating and reusing path
 * (snapshot, mirror, backup, with and without {@code -n}) against every kind of occupied target (an image of the open
 * chain under any name for it, a file another process holds, a FIFO, a directory) is refused with QEMU 7.2's message
 * and leaves every byte in the directory as it was. The messages were taken from QEMU 7.2's HMP on the same targets.
 */
class TargetSafetyTest {
    private static final String LOCK_ERROR = "Failed to get \"write\" lock\nIs another process using the image [%s]?";

    @TempDir
    Path dir;
    BlockGraph graph;
    final List<String> stdout = new CopyOnWriteArrayList<>();
    Process holder;

    @BeforeEach
    void setUp() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "file-A.img", "8M");
        QemuTools.qemuIo(dir, "file-A.img", "write -P 0xa1 0 1M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "file-A.img", "-F", "qcow2", "file-E.img");
        QemuTools.qemuIo(dir, "file-E.img", "write -P 0xe1 4M 1M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "locked.img", "8M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "small.img", "2M");
        Files.createSymbolicLink(dir.resolve("link-A.img"), dir.resolve("file-A.img").getFileName());
        Files.createLink(dir.resolve("hard-A.img"), dir.resolve("file-A.img"));
        Files.createDirectory(dir.resolve("dir"));
        new ProcessBuilder("mkfifo", dir.resolve("fifo").toString()).start().waitFor();
        graph = new BlockGraph(dir);
        graph.addDrive(DriveOptions.parse("file=file-E.img,if=none,id=virtio0"));
    }

    @AfterEach
    void tearDown() throws Exception {
        graph.close();
        if (holder != null) {
            holder.destroyForcibly().waitFor();
        }
    }

    /** A qemu-io that keeps locked.img open read-write, as a running QEMU would. */
    private void holdLockedImage() throws Exception {
        ProcessBuilder pb = new ProcessBuilder("qemu-io", "-c", "sleep 60000", "locked.img").directory(dir.toFile())
                .redirectErrorStream(true);
        holder = pb.start();
        // generous: on a loaded 2-core machine qemu-io has taken more than 10 s to start
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (QemuTools.run(dir, "qemu-io", "-c", "read 0 512", "locked.img").exitCode() == 0) {
            assertThat(System.nanoTime()).as("qemu-io took its lock").isLessThan(deadline);
            if (!holder.isAlive()) {
                // the probe held the file just when the holder opened it: the holder gave up; start it again
                holder = pb.start();
            }
            Thread.sleep(50);
        }
    }

    /** sha256 of every regular file in the directory; a FIFO and the directory count by name. */
    private Map<String, String> digests() throws IOException {
        Map<String, String> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                String name = dir.relativize(p).toString();
                if (Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                    try {
                        m.put(name, HexFormat.of().formatHex(
                                MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
                    } catch (java.security.NoSuchAlgorithmException e) {
                        throw new AssertionError(e);
                    }
                } else {
                    m.put(name, Files.isSymbolicLink(p) ? "link" : Files.isDirectory(p) ? "dir" : "other");
                }
            }
        }
        return m;
    }

    /** Each creating command, by name, as the monitor's forms run it (HMP defaults: sync=top). */
    interface Command {
        void run(BlockGraph g, String target, boolean reuse, List<String> out) throws BlockException;
    }

    static Stream<Arguments> commands() {
        Command snapshot = (g, t, reuse, out) -> ExternalSnapshot.take(g, "virtio0", null, t, "qcow2", reuse, null,
                out::add);
        Command mirror = (g, t, reuse, out) -> MirrorJob.start(g, MirrorJob.Request.hmp("virtio0", t, "qcow2", reuse,
                true), out::add);
        Command backup = (g, t, reuse, out) -> BackupJob.start(g, BackupJob.Request.hmp("virtio0", t, "qcow2", reuse,
                true, false), out::add);
        Command rawMirror = (g, t, reuse, out) -> MirrorJob.start(g, MirrorJob.Request.hmp("virtio0", t, "raw", reuse,
                true), out::add);
        return Stream.of(Arguments.of("snapshot_blkdev", snapshot), Arguments.of("drive_mirror -f", mirror),
                Arguments.of("drive_backup -f", backup), Arguments.of("drive_mirror -f (raw)", rawMirror));
    }

    @ParameterizedTest(name = "{0} onto an image of the open chain, under any name, is refused")
    @MethodSource("commands")
    void openImagesAreNeverOverwritten(String name, Command c) throws Exception {
        List<String> targets = List.of("file-A.img", "./file-A.img", "link-A.img", "hard-A.img", "file-E.img",
                dir.resolve("file-A.img").toString());
        Map<String, String> before = digests();
        for (String t : targets) {
            for (boolean reuse : new boolean[] {false, true}) {
                assertThatThrownBy(() -> c.run(graph, t, reuse, stdout)).as("%s %s reuse=%s", name, t, reuse)
                        .isInstanceOf(BlockException.class)
                        .satisfies(e -> assertThat(e.getMessage()).isIn(String.format(LOCK_ERROR, t),
                                "Error: Trying to create an image with the same filename as the backing file"));
                assertThat(digests()).as("%s %s reuse=%s", name, t, reuse).isEqualTo(before);
            }
        }
        assertThat(graph.jobInfos()).isEmpty();
        QemuTools.assertClean(dir, "file-A.img");
    }

    @ParameterizedTest(name = "{0}: a refused target keeps livemon's own locks on its open images")
    @MethodSource("commands")
    void aRefusedTargetLeavesTheOpenImagesLocked(String name, Command c) throws Exception {
        // Closing any descriptor of a file drops every record lock the process holds on it: a refused open or a
        // format probe of an open image must re-take them, or another process could write the live image.
        for (String t : List.of("file-E.img", "file-A.img")) {
            assertThatThrownBy(() -> c.run(graph, t, true, stdout)).isInstanceOf(BlockException.class);
            QemuTools.Result r = QemuTools.run(dir, "qemu-io", "-c", "write -P 0x22 0 64k", t);
            assertThat(r.exitCode()).as("%s: qemu-io write to %s after the refusal: %s", name, t, r.stdout())
                    .isNotZero();
            assertThat(r.stderr()).contains("Failed to get");
        }
    }

    @ParameterizedTest(name = "{0} onto an image another process holds is refused")
    @MethodSource("commands")
    void imagesOfOtherProcessesAreNeverOverwritten(String name, Command c) throws Exception {
        holdLockedImage();
        Map<String, String> before = digests();
        for (boolean reuse : new boolean[] {false, true}) {
            assertThatThrownBy(() -> c.run(graph, "locked.img", reuse, stdout)).as("reuse=%s", reuse)
                    .hasMessage(String.format(LOCK_ERROR, "locked.img"));
            assertThat(digests()).isEqualTo(before);
        }
    }

    @ParameterizedTest(name = "{0} onto a FIFO or a directory answers at once and writes nothing")
    @MethodSource("commands")
    void nonRegularTargetsAreRefusedWithoutBlocking(String name, Command c) throws Exception {
        Map<String, String> before = digests();
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            assertThatThrownBy(() -> c.run(graph, "fifo", false, stdout))
                    .hasMessage("Could not resize file: Invalid argument");
            assertThatThrownBy(() -> c.run(graph, "fifo", true, stdout))
                    .hasMessage("'file' driver requires 'fifo' to be a regular file");
            assertThatThrownBy(() -> c.run(graph, "dir", false, stdout))
                    .hasMessage("Could not create 'dir': Is a directory");
            assertThatThrownBy(() -> c.run(graph, "dir", true, stdout))
                    .hasMessage("'file' driver requires 'dir' to be a regular file");
        });
        assertThat(digests()).isEqualTo(before);
    }

    @Test
    void creatingPrintsQemusFormattingLineBeforeTheLockError() {
        assertThatThrownBy(() -> ExternalSnapshot.take(graph, "virtio0", null, "./file-A.img", "qcow2", false, null,
                stdout::add)).hasMessage(String.format(LOCK_ERROR, "./file-A.img"));
        assertThat(stdout).containsExactly("Formatting './file-A.img', fmt=qcow2 cluster_size=65536 extended_l2=off "
                + "compression_type=zlib size=8388608 backing_file=file-E.img backing_fmt=qcow2 lazy_refcounts=off "
                + "refcount_bits=16");
    }

    @Test
    void aFreeExistingFileIsReplacedByACompleteImageKeepingItsPermissions() throws Exception {
        Path other = dir.resolve("other.img");
        Files.write(other, new byte[] {1, 2, 3});
        Files.setPosixFilePermissions(other, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        ExternalSnapshot.take(graph, "virtio0", null, "other.img", "qcow2", false, null, stdout::add);
        assertThat(Files.getPosixFilePermissions(other))
                .isEqualTo(java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        try (Stream<Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.contains(".livemon-"));
        }
        graph.close();
        QemuTools.assertClean(dir, "other.img");
        assertThat(QemuTools.qemuImg(dir, "info", "other.img").stdout()).contains("backing file: file-E.img");
    }

    @Test
    void mirrorIntoAnExistingTargetOfAnotherSizeFailsAndLeavesItAlone() throws Exception {
        List<Event> events = new CopyOnWriteArrayList<>();
        graph.events().subscribe(events::add);
        Map<String, String> before = digests();
        MirrorJob.start(graph, MirrorJob.Request.hmp("virtio0", "small.img", "qcow2", true, true), stdout::add);
        assertThat(graph.awaitNoJobs(20_000)).isTrue();
        Event done = events.stream().filter(e -> e.name().equals("BLOCK_JOB_COMPLETED")).findFirst().orElseThrow();
        assertThat(done.data().get("error")).isEqualTo("Source and target image have different sizes");
        assertThat(graph.device("virtio0").root().filename()).isEqualTo("file-E.img");
        graph.close();
        assertThat(digests()).isEqualTo(before);
    }

    @Test
    void backupIntoAnExistingTargetOfAnotherSizeIsRefused() throws Exception {
        Map<String, String> before = digests();
        assertThatThrownBy(() -> BackupJob.start(graph, BackupJob.Request.hmp("virtio0", "small.img", "qcow2", true,
                true, false), stdout::add)).hasMessage("Source and target image have different sizes");
        assertThat(digests()).isEqualTo(before);
    }

    @Test
    void hmpCommitGrowsAShorterBackingFileFirst() throws Exception {
        graph.close();
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "back.img", "1M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "back.img", "-F", "qcow2", "top.img", "2M");
        QemuTools.qemuIo(dir, "top.img", "write -P 2 1536k 64k");
        graph = new BlockGraph(dir);
        graph.addDrive(DriveOptions.parse("file=top.img,if=none,id=virtio0"));
        DriveCommit.commit(graph, "virtio0");
        graph.close();
        assertThat(QemuTools.qemuIo(dir, "top.img", "read -P 2 1536k 64k").stdout()).doesNotContain("Pattern");
        assertThat(QemuTools.infoJson(dir, "back.img")).contains("\"virtual-size\": 2097152");
        QemuTools.assertClean(dir, "back.img");
        QemuTools.assertClean(dir, "top.img");
    }

    @Test
    void commitOnAReadOnlyDriveLeavesTheBackingFileAlone() throws Exception {
        graph.close();
        graph = new BlockGraph(dir);
        graph.addDrive(DriveOptions.parse("file=file-E.img,if=none,id=virtio0,readonly=on"));
        Map<String, String> before = digests();
        assertThatThrownBy(() -> DriveCommit.commit(graph, "virtio0"))
                .hasMessage("'commit' error for 'virtio0': Operation not permitted");
        graph.close();
        assertThat(digests()).isEqualTo(before);
    }

    @Test
    void aRawOverlayIsRefusedAndLeftFree() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "r.raw", "8M");
        assertThatThrownBy(() -> ExternalSnapshot.take(graph, "virtio0", null, "r.raw", "raw", true, null,
                stdout::add)).hasMessage("The overlay does not support backing images");
        assertThat(QemuTools.run(dir, "qemu-io", "-f", "raw", "-c", "write 0 512", "r.raw").exitCode()).isZero();
    }

    @Test
    void blockResizeBeyondQemusMaximumIsRefused() throws Exception {
        Map<String, String> before = digests();
        assertThatThrownBy(() -> DriveOperations.resize(graph, "virtio0", null, Long.MAX_VALUE - 511))
                .hasMessage("offset(9223372036854775296) exceeds maximum(9223372035781033984)");
        assertThatThrownBy(() -> DriveOperations.resize(graph, "virtio0", null, 3L << 50))
                .hasMessage("Failed to grow the L1 table: File too large");
        graph.close();
        assertThat(digests()).isEqualTo(before);
        QemuTools.assertClean(dir, "file-E.img");
    }

    @Test
    void aFullMirrorIntoAnExistingTargetWithABackingFileCopiesTheSourceExactly() throws Exception {
        // the target's backing file holds data where the source reads zeroes: QEMU writes zeroes over it
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "z.img", "8M");
        QemuTools.qemuIo(dir, "z.img", "write -P 0x99 6M 1M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "z.img", "-F", "qcow2", "tz.img");
        QemuTools.toRaw(dir, "file-E.img", "source.raw");
        MirrorJob.start(graph, MirrorJob.Request.hmp("virtio0", "tz.img", "qcow2", true, true), stdout::add);
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(30)).until(() -> graph.jobInfos().stream()
                .anyMatch(j -> j.ready()));
        // the target's own backing file is open (and locked) as QEMU opens it: nothing may overwrite it now
        QemuTools.Result w = QemuTools.run(dir, "qemu-io", "-c", "write -P 0x22 0 64k", "z.img");
        assertThat(w.exitCode()).isNotZero();
        assertThat(w.stderr()).contains("Failed to get \"write\" lock");
        graph.job("virtio0").complete();
        assertThat(graph.awaitNoJobs(30_000)).isTrue();
        assertThat(graph.device("virtio0").root().backing().filename()).isEqualTo("z.img");
        graph.close();
        assertThat(QemuTools.compare(dir, "source.raw", "tz.img").exitCode()).isZero();
        QemuTools.assertClean(dir, "tz.img");
    }

    @Test
    void blockResizeOfADeviceAJobHoldsIsRefused() throws Exception {
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 1, null));
        assertThatThrownBy(() -> DriveOperations.resize(graph, "virtio0", null, 16L << 20))
                .hasMessage("Device 'virtio0' is in use");
        String top = graph.device("virtio0").root().skipFilters().name();
        assertThatThrownBy(() -> DriveOperations.resize(graph, null, top, 16L << 20))
                .hasMessage("Device '(null)' is in use");
        assertThat(graph.device("virtio0").root().size()).isEqualTo(8L << 20);
        List<String> ids = new ArrayList<>();
        graph.jobInfos().forEach(j -> ids.add(j.id()));
        assertThat(ids).containsExactly("virtio0");
    }
}
