package io.livemon.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.livemon.block.BlockException;
import io.livemon.block.BlockGraph;
import io.livemon.block.CommitJob;
import io.livemon.block.DriveOptions;
import io.livemon.block.OnErrorPolicy;
import io.livemon.block.StreamJob;
import io.livemon.block.StreamRequest;
import io.livemon.testsupport.QemuTools;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Names given to stream and commit are looked up as QEMU 7.2 looks them up (bdrv_find_backing_image), and every
 * backing string livemon writes opens with the real qemu-img. Expected texts were taken from QEMU 7.2.22 running the
 * same commands on the same chains.
 */
class BackingNamesTest {
    @TempDir
    Path dir;
    private BlockGraph graph;
    private final ByteArrayOutputStream outBytes = new ByteArrayOutputStream();
    private HmpSession session;

    @BeforeEach
    void setUp() {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        graph = new BlockGraph(dir);
        PrintStream out = new PrintStream(outBytes, true, StandardCharsets.UTF_8);
        session = new HmpSession(graph, new CommandTable(), out, out, false);
    }

    @AfterEach
    void tearDown() {
        if (graph != null) {
            graph.close();
        }
    }

    /** A <- B <- C <- E in {@code sub} (relative backing strings, as scenario 23), each with its own pattern. */
    private void chainIn(String sub) throws Exception {
        Path d = sub.isEmpty() ? dir : Files.createDirectories(dir.resolve(sub));
        QemuTools.qemuImg(d, "create", "-q", "-f", "qcow2", "file-A.img", "4M");
        QemuTools.qemuIo(d, "file-A.img", "write -P 0xa1 0 1M");
        String prev = "A";
        int i = 1;
        for (String n : new String[] {"B", "C", "E"}) {
            QemuTools.qemuImg(d, "create", "-q", "-f", "qcow2", "-b", "file-" + prev + ".img", "-F", "qcow2",
                    "file-" + n + ".img");
            QemuTools.qemuIo(d, "file-" + n + ".img", "write -P 0x" + n.toLowerCase() + "1 " + i + "M 64k");
            prev = n;
            i++;
        }
    }

    private String hmp(String... lines) throws Exception {
        outBytes.reset();
        for (String l : lines) {
            session.out().println("(qemu) " + l);
            Interpreter.execute(session, l);
            if (l.startsWith("block_stream") || l.startsWith("drive_backup") || l.startsWith("block_job_cancel")) {
                assertThat(graph.awaitNoJobs(60_000)).isTrue();
            }
        }
        return outBytes.toString(StandardCharsets.UTF_8);
    }

    /** The backing string in {@code file}'s header, as qemu-img reads it; fails unless the whole chain opens. */
    private String backingString(String file) {
        QemuTools.Result r = QemuTools.run(dir, "qemu-img", "info", "-U", "--backing-chain", file);
        assertThat(r.ok()).as(r.describe()).isTrue();
        for (String line : r.stdout().split("\n")) {
            if (line.startsWith("backing file: ")) {
                return line.substring("backing file: ".length()).replaceAll(" \\(actual path: .*\\)$", "");
            }
        }
        return null;
    }

    @Test
    void streamBaseIsFoundFromTheChainNotFromTheWorkingDirectory() throws Exception {
        chainIn("img");
        QemuTools.toRaw(dir, "img/file-E.img", "before.raw");
        graph.addDrive(DriveOptions.parse("file=img/file-E.img,if=none,id=virtio0,node-name=node-E"));
        String out = hmp("block_stream virtio0 0 img/file-B.img", "block_stream virtio0 0 file-B.img",
                "info block");
        assertThat(out).isEqualTo("(qemu) block_stream virtio0 0 img/file-B.img\n"
                + "Error: Can't find 'img/file-B.img' in the backing chain\n"
                + "(qemu) block_stream virtio0 0 file-B.img\n"
                + "(qemu) info block\n"
                + "virtio0 (node-E): img/file-E.img (qcow2)\n"
                + "    Removable device: not locked, tray closed\n"
                + "    Cache mode:       writeback\n"
                + "    Backing file:     img/file-B.img (chain depth: 2)\n");
        graph.close();
        // QEMU writes "img/file-B.img" here, which resolves to img/img/file-B.img; livemon's string resolves
        assertThat(backingString("img/file-E.img")).isEqualTo("file-B.img");
        assertThat(QemuTools.compare(dir, "before.raw", "img/file-E.img").ok()).isTrue();
        QemuTools.assertClean(dir, "img/file-E.img");
    }

    @Test
    void namesAreLookedUpAgainstQemusStringWhereLivemonWroteAResolvingOne() throws Exception {
        // fuzz seed 6029: a snapshot into img/ of img/file-A.img. QEMU writes "img/file-A.img" into img/snap1.qcow2
        // and then cannot find "file-A.img" (it resolves its own string to img/img/file-A.img); livemon writes
        // "file-A.img", which resolves, and still answers the monitor as QEMU does (QEMU 7.2.22's text)
        Files.createDirectories(dir.resolve("img"));
        QemuTools.qemuImg(dir.resolve("img"), "create", "-q", "-f", "raw", "file-A.img", "1M");
        graph.addDrive(DriveOptions.parse("file=img/file-A.img,if=none,id=virtio0,format=raw"));
        String out = hmp("snapshot_blkdev virtio0 img/snap1.qcow2 qcow2", "block_stream virtio0 1G file-A.img",
                "block_stream virtio0 1G img/file-A.img");
        assertThat(out).contains("(qemu) block_stream virtio0 1G file-A.img\n"
                + "Error: Can't find 'file-A.img' in the backing chain\n"
                + "(qemu) block_stream virtio0 1G img/file-A.img\n"
                + "Error: Can't find 'img/file-A.img' in the backing chain\n");
        graph.close();
        assertThat(backingString("img/snap1.qcow2")).isEqualTo("file-A.img");
    }

    @Test
    void namesQemuFindsAndNamesItDoesNot() throws Exception {
        chainIn("img");
        graph.addDrive(DriveOptions.parse("file=img/file-E.img,if=none,id=virtio0"));
        for (String name : new String[] {"img/file-B.img", "file-E.img", "img/file-C.img", "nosuch.img"}) {
            assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", 1, name)))
                    .hasMessage("Can't find '" + name + "' in the backing chain");
        }
        // found (QEMU answers with the busy error while the first job runs)
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 1, "./file-B.img"));
        for (String name : new String[] {"../img/file-B.img", dir.resolve("img/file-B.img").toString(),
            "file-C.img", "file-A.img"}) {
            assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", 1, name)))
                    .hasMessage("Node 'virtio0' is busy: block device is in use by block job: stream");
        }
    }

    @Test
    void aNameIsAlsoReadFromTheDirectoryOfEachLowerOverlay() throws Exception {
        // E in top/ backed by ../mid/file-C.img; QEMU finds "file-B.img" relative to C's directory (mid/)
        chainIn("mid");
        Files.createDirectories(dir.resolve("top"));
        QemuTools.qemuImg(dir.resolve("top"), "create", "-q", "-f", "qcow2", "-b", "../mid/file-C.img", "-F",
                "qcow2", "file-E.img");
        graph.addDrive(DriveOptions.parse("file=top/file-E.img,if=none,id=virtio0"));
        assertThatThrownBy(() -> StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, "mid/file-B.img")))
                .hasMessage("Can't find 'mid/file-B.img' in the backing chain");
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, "file-B.img"));
        assertThat(graph.awaitNoJobs(60_000)).isTrue();
        graph.close();
        assertThat(backingString("top/file-E.img")).isEqualTo("../mid/file-B.img");
    }

    @Test
    void intermediateCommitInASubdirectoryWritesAStringThatResolves() throws Exception {
        chainIn("img");
        QemuTools.toRaw(dir, "img/file-E.img", "before.raw");
        graph.addDrive(DriveOptions.parse("file=img/file-E.img,if=none,id=virtio0"));
        assertThatThrownBy(() -> CommitJob.start(graph, commit("img/file-C.img", "file-A.img")))
                .hasMessage("Top image file img/file-C.img not found");
        CommitJob.start(graph, commit("file-C.img", "file-A.img"));
        assertThat(graph.awaitNoJobs(60_000)).isTrue();
        assertThat(hmp("info block")).contains("    Backing file:     img/file-A.img (chain depth: 1)\n");
        graph.close();
        assertThat(backingString("img/file-E.img")).isEqualTo("file-A.img");
        assertThat(QemuTools.compare(dir, "before.raw", "img/file-E.img").ok()).isTrue();
        QemuTools.assertClean(dir, "img/file-A.img");
    }

    private static CommitJob.Request commit(String top, String base) {
        return new CommitJob.Request(null, "virtio0", null, base, null, top, null, 0, OnErrorPolicy.REPORT, true,
                true);
    }

    @Test
    void snapshotsIntoAnotherDirectoryResolve() throws Exception {
        chainIn("");
        Files.createDirectories(dir.resolve("sub"));
        graph.addDrive(DriveOptions.parse("file=file-E.img,if=none,id=virtio0"));
        String out = hmp("snapshot_blkdev virtio0 sub/snap.img", "info block",
                "snapshot_blkdev virtio0 sub/snap2.img", "info block");
        // QEMU's transcript (its strings: file-E.img, sub/snap.img) ...
        assertThat(out.replaceAll("#block\\d+", "#block")).isEqualTo("(qemu) snapshot_blkdev virtio0 sub/snap.img\n"
                + "Formatting 'sub/snap.img', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib "
                + "size=4194304 backing_file=file-E.img backing_fmt=qcow2 lazy_refcounts=off refcount_bits=16\n"
                + "(qemu) info block\n"
                + "virtio0 (#block): sub/snap.img (qcow2)\n"
                + "    Removable device: not locked, tray closed\n"
                + "    Cache mode:       writeback\n"
                + "    Backing file:     file-E.img (chain depth: 4)\n"
                + "(qemu) snapshot_blkdev virtio0 sub/snap2.img\n"
                + "Formatting 'sub/snap2.img', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib "
                + "size=4194304 backing_file=sub/snap.img backing_fmt=qcow2 lazy_refcounts=off refcount_bits=16\n"
                + "(qemu) info block\n"
                + "virtio0 (#block): sub/snap2.img (qcow2)\n"
                + "    Removable device: not locked, tray closed\n"
                + "    Cache mode:       writeback\n"
                + "    Backing file:     sub/snap.img (chain depth: 5)\n");
        graph.close();
        // ... but strings that lead to the files (QEMU's sub/snap2.img -> sub/sub/snap.img cannot be opened)
        assertThat(backingString("sub/snap2.img")).isEqualTo("snap.img");
        assertThat(backingString("sub/snap.img")).isEqualTo("../file-E.img");
        QemuTools.assertClean(dir, "sub/snap2.img");
    }

    @Test
    void absolutePathsStayAsQemuWritesThem() throws Exception {
        chainIn("img");
        String abs = dir.resolve("img").toString();
        graph.addDrive(DriveOptions.parse("file=" + abs + "/file-E.img,if=none,id=virtio0"));
        hmp("block_stream virtio0 0 file-B.img");
        Path other = Files.createDirectories(dir.resolve("other"));
        hmp("snapshot_blkdev virtio0 " + other + "/snap.img");
        graph.close();
        assertThat(backingString(abs + "/file-E.img")).isEqualTo(abs + "/file-B.img");
        assertThat(backingString("other/snap.img")).isEqualTo(abs + "/file-E.img");
    }

    @Test
    void mirrorTargetInAnotherDirectoryResolvesAndBackupIsRefusedAsInQemu() throws Exception {
        chainIn("");
        Files.createDirectories(dir.resolve("sub"));
        graph.addDrive(DriveOptions.parse("file=file-E.img,if=none,id=virtio0"));
        String out = hmp("drive_backup virtio0 sub/t4.img");
        assertThat(out).isEqualTo("(qemu) drive_backup virtio0 sub/t4.img\n"
                + "Error: Could not open 'sub/file-C.img': No such file or directory\n"
                + "Could not open backing image.\n");
        assertThat(dir.resolve("sub/t4.img")).doesNotExist();
        out = hmp("drive_mirror virtio0 sub/t3.img");
        assertThat(out).contains("Formatting 'sub/t3.img', fmt=qcow2 cluster_size=65536 extended_l2=off "
                + "compression_type=zlib size=4194304 backing_file=file-C.img backing_fmt=qcow2");
        hmp("block_job_cancel virtio0");
        graph.close();
        assertThat(backingString("sub/t3.img")).isEqualTo("../file-C.img");
    }

    @Test
    void backingFileOverrideMustLeadToTheBase() throws Exception {
        chainIn("img");
        graph.addDrive(DriveOptions.parse("file=img/file-E.img,if=none,id=virtio0"));
        assertThatThrownBy(() -> StreamJob.start(graph, new StreamRequest(null, "virtio0", "file-B.img", null,
                "img/file-B.img", 0, OnErrorPolicy.REPORT, true, true)))
                .isInstanceOf(BlockException.class)
                .hasMessage("Backing file string 'img/file-B.img' does not lead to 'img/file-B.img' from the "
                        + "directory of 'img/file-E.img'");
        StreamJob.start(graph, new StreamRequest(null, "virtio0", "file-B.img", null, "./file-B.img", 0,
                OnErrorPolicy.REPORT, true, true));
        assertThat(graph.awaitNoJobs(60_000)).isTrue();
        // QEMU 7.2 then shows the overlay as a json: pseudo-filename (its backing is not the file the header names)
        assertThat(hmp("info block")).isEqualTo("(qemu) info block\n"
                + "virtio0 (#block" + graph.device("virtio0").root().name().substring(6) + "): json:{\"backing\": "
                + "{\"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", \"filename\": \"img/file-B.img\"}}, "
                + "\"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", \"filename\": \"img/file-E.img\"}} (qcow2)\n"
                + "    Removable device: not locked, tray closed\n"
                + "    Cache mode:       writeback\n"
                + "    Backing file:     img/file-B.img (chain depth: 2)\n");
        graph.close();
        assertThat(backingString("img/file-E.img")).isEqualTo("./file-B.img");
    }

    @Test
    void snapshotOntoAnExistingOverlayShowsQemusJsonName() throws Exception {
        chainIn("");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "file-A.img", "-F", "qcow2", "snap.img");
        graph.addDrive(DriveOptions.parse("file=file-E.img,if=none,id=virtio0,node-name=node-E"));
        String out = hmp("snapshot_blkdev -n virtio0 snap.img", "info block");
        assertThat(out.replaceAll("#block\\d+", "#block")).isEqualTo("(qemu) snapshot_blkdev -n virtio0 snap.img\n"
                + "(qemu) info block\n"
                + "virtio0 (#block): json:{\"backing\": {\"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", "
                + "\"filename\": \"file-E.img\"}}, \"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", "
                + "\"filename\": \"snap.img\"}} (qcow2)\n"
                + "    Removable device: not locked, tray closed\n"
                + "    Cache mode:       writeback\n"
                + "    Backing file:     file-E.img (chain depth: 4)\n");
    }

    @Test
    void backingChosenOnTheCommandLineShowsQemusJsonName() throws Exception {
        chainIn("");
        graph.addDrive(DriveOptions.parse("file=file-E.img,if=none,id=v1,backing.file.filename=./file-C.img"));
        graph.addDrive(DriveOptions.parse("file=file-C.img,if=none,id=v2,backing=,readonly=on"));
        String out = hmp("info block v1", "info block v2", "qemu-io v1 \"read -P 0xb1 1M 64k\"",
                "qemu-io v2 \"read -P 0 1M 64k\"");
        assertThat(out.replaceAll("#block\\d+", "#block")).startsWith("(qemu) info block v1\n"
                + "v1 (#block): json:{\"backing\": {\"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", "
                + "\"filename\": \"./file-C.img\"}}, \"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", "
                + "\"filename\": \"file-E.img\"}} (qcow2)\n"
                + "    Removable device: not locked, tray closed\n"
                + "    Cache mode:       writeback\n"
                + "    Backing file:     ./file-C.img (chain depth: 3)\n"
                + "(qemu) info block v2\n"
                + "\n" // QEMU's empty line before a filtered entry that is not the first drive
                + "v2 (#block): json:{\"backing\": null, \"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", "
                + "\"filename\": \"file-C.img\"}} (qcow2, read-only)\n"
                + "    Removable device: not locked, tray closed\n"
                + "    Cache mode:       writeback\n");
        assertThat(out).doesNotContain("Pattern verification failed");
        graph.close();
        assertThat(backingString("file-E.img")).isEqualTo("file-C.img"); // the header is not changed
    }
}
