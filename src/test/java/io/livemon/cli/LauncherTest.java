package io.livemon.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.image.QemuTools;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The livemon process as a user or a script starts it: options, start-up errors, pipes, scripts. */
class LauncherTest {
    @TempDir
    Path dir;

    record Run(int exit, String out, String err) {
    }

    private Run livemon(String stdin, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "-Dorg.slf4j.simpleLogger.logFile="
                        + dir.resolve("livemon.log"), "io.livemon.cli.Main"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).start();
        try (OutputStream in = p.getOutputStream()) {
            in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread t1 = pump(p.getInputStream(), out);
        Thread t2 = pump(p.getErrorStream(), err);
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("livemon exits").isTrue();
        t1.join();
        t2.join();
        return new Run(p.exitValue(), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static Thread pump(InputStream in, ByteArrayOutputStream to) {
        Thread t = new Thread(() -> {
            try (in) {
                in.transferTo(to);
            } catch (Exception ignored) {
                // process gone
            }
        });
        t.start();
        return t;
    }

    @Test
    void aDriveThatCannotBeOpenedIsAStartUpErrorWithoutPrompt() throws Exception {
        Run r = livemon("info block\n", "-M", "none", "-nodefaults", "-display", "none",
                "-drive", "file=nosuch.img,if=none,id=virtio0");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("livemon: -drive file=nosuch.img,if=none,id=virtio0: "
                + "Could not open 'nosuch.img': No such file or directory\n");
        assertThat(r.out()).doesNotContain("(qemu)");
    }

    @Test
    void aMissingBackingFileIsNamedAsQemuNamesIt() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "a.img", "1M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "a.img", "-F", "qcow2", "b.img");
        Files.delete(dir.resolve("a.img"));
        Run r = livemon("", "-drive", "file=b.img,if=none,id=v0");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("livemon: -drive file=b.img,if=none,id=v0: Could not open backing file: "
                + "Could not open 'a.img': No such file or directory\n");
    }

    @Test
    void anUnknownOptionIsAStartUpError() throws Exception {
        Run r = livemon("", "-bogus");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).startsWith("livemon: ").contains("-bogus");
    }

    @Test
    void pipeModeEchoesEachCommandAfterAFlushedPromptAndExitsAtEndOfInput() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "d.qcow2", "16M");
        Run r = livemon("info block-jobs\nnosuch\n", "-M", "none", "-drive", "file=d.qcow2,if=none,id=virtio0");
        assertThat(r.exit()).isZero();
        List<String> lines = r.out().lines().toList();
        assertThat(lines.get(1)).isEqualTo("(qemu) info block-jobs");
        assertThat(lines.get(2)).isEqualTo("No active jobs");
        assertThat(lines.get(3)).isEqualTo("(qemu) nosuch");
        assertThat(lines.get(4)).isEqualTo("unknown command: 'nosuch'");
        assertThat(r.err()).isEmpty();
        assertThat(QemuTools.check(dir, "d.qcow2").exitCode()).isZero();
    }

    @Test
    void quitPrintsNoFurtherPromptAndDefaultNamesFollowTheInterface() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "d.qcow2", "16M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "e.qcow2", "16M");
        Run r = livemon("info block\nquit\ninfo status\n", "-drive", "file=d.qcow2,if=virtio",
                "-drive", "file=e.qcow2,if=ide");
        assertThat(r.exit()).isZero();
        assertThat(r.out()).contains("virtio0 (#block").contains("ide0-hd0 (#block");
        assertThat(r.out()).endsWith("(qemu) quit\n");
    }

    @Test
    void strictScriptStopsAtTheFirstFailureWithStatusOne() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "d.qcow2", "16M");
        Files.writeString(dir.resolve("s.hmp"), "# a comment\n\ninfo status\nblock_job_pause virtio0\ninfo version\n");
        Run strict = livemon("", "--strict", "-x", "s.hmp", "-drive", "file=d.qcow2,if=none,id=virtio0");
        assertThat(strict.exit()).isEqualTo(1);
        assertThat(strict.out()).contains("(qemu) info status", "Error: Block job 'virtio0' not found")
                .doesNotContain("info version").doesNotContain("a comment");
        Run lenient = livemon("", "-x", "s.hmp", "-drive", "file=d.qcow2,if=none,id=virtio0");
        assertThat(lenient.exit()).isZero();
        assertThat(lenient.out()).contains("(qemu) info version");
    }

    @Test
    void versionAndHelp() throws Exception {
        assertThat(livemon("", "--version").out()).contains("livemon 0.1.0").contains("7.2.22");
        assertThat(livemon("", "--help").out()).contains("-drive", "--script", "--strict", "--events", "-qmp");
    }
}
