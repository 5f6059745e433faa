package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crash safety of streams: livemon (a child JVM) is killed with SIGKILL at a random moment of a stream. Every image
 * must pass qemu-img check (leaks allowed), the guest-visible content must be unchanged, and streaming again must
 * finish the merge.
 */
class StreamKillTest {
    private static final int KILLS = 24;

    @TempDir
    Path dir;

    @Test
    void killedStreamsLeaveValidChainsAndCanBeRestarted() throws Exception {
        Random rnd = new Random(20261126L);
        for (int i = 0; i < KILLS; i++) {
            Path d = Files.createDirectory(dir.resolve("kill" + i));
            SeedChain.create(d, "32M");
            SeedChain.snapshotContent(d, "file-E.img", "before.raw");
            boolean withBase = i % 2 == 1;
            String cmd = withBase ? "block_stream virtio0 8M file-B.img" : "block_stream virtio0 8M";
            Process p = startLivemon(d);
            try (OutputStream in = p.getOutputStream()) {
                in.write((cmd + "\n").getBytes(StandardCharsets.UTF_8));
                in.flush();
                Thread.sleep(300 + rnd.nextInt(2000));
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
            }
            String ctx = "kill " + i + " (" + cmd + ")";
            for (String l : List.of("A", "B", "C", "D", "E")) {
                int rc = QemuTools.check(d, "file-" + l + ".img").exitCode();
                assertThat(rc).as(ctx + ": qemu-img check file-" + l + ".img exit (0 clean, 3 leaks)").isIn(0, 3);
            }
            assertThat(QemuTools.compare(d, "before.raw", "file-E.img").exitCode()).as(ctx + ": content").isZero();

            BlockGraph graph = new BlockGraph(d);
            List<Event> events = new java.util.concurrent.CopyOnWriteArrayList<>();
            graph.events().subscribe(events::add);
            try {
                graph.addDrive(DriveOptions.parse(SeedChain.DRIVE.replaceAll(",backing\\..*", "")));
                StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, withBase ? "file-B.img" : null));
                assertThat(graph.awaitNoJobs(30_000)).isTrue();
                assertThat(events).as(ctx + ": restarted stream").noneMatch(e -> e.data().containsKey("error"));
            } finally {
                graph.close();
            }
            assertThat(QemuTools.compare(d, "before.raw", "file-E.img").exitCode()).as(ctx + ": after restart")
                    .isZero();
            String info = QemuTools.qemuImg(d, "info", "file-E.img").stdout();
            if (withBase) {
                assertThat(info).as(ctx).contains("backing file: file-B.img");
            } else {
                assertThat(info).as(ctx).doesNotContain("backing file:");
            }
            assertThat(QemuTools.check(d, "file-E.img").exitCode()).as(ctx).isIn(0, 3);
        }
    }

    private static Process startLivemon(Path d) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        ProcessBuilder pb = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                "-Dorg.slf4j.simpleLogger.logFile=" + d.resolve("livemon.log"),
                "io.livemon.cli.Main", "-M", "none", "-drive", SeedChain.DRIVE)
                .directory(d.toFile())
                .redirectOutput(d.resolve("stdout.txt").toFile())
                .redirectError(d.resolve("stderr.txt").toFile());
        return pb.start();
    }
}
