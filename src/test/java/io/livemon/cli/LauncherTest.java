package io.livemon.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The livemon process as a user or a script starts it: options, start-up errors, pipes, scripts. */
class LauncherTest {
    @TempDir
    Path dir;

    private LivemonProcess.Run livemon(String stdin, String... args) throws Exception {
        return LivemonProcess.run(dir, stdin, args);
    }

    @Test
    void atATerminalTheHistoryGoesToHomeAndTheDemoDirectoryIsRemovedAtExit() throws Exception {
        Path home = java.nio.file.Files.createDirectories(dir.resolve("home"));
        LivemonProcess.Run r = LivemonProcess.run(dir, java.util.Map.of("HOME", home.toString()), true,
                LivemonProcess.SLEEP + "info status\n" + LivemonProcess.SLEEP + "quit\n" + LivemonProcess.SLEEP);
        assertThat(r.out()).contains("VM status: running").contains("removed when livemon ends");
        assertThat(java.nio.file.Files.readString(home.resolve(".livemon_history"))).contains("info status");
        try (java.util.stream.Stream<Path> s = java.nio.file.Files.list(dir.resolve("tmp"))) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith("livemon-demo-"));
        }
    }

    @Test
    void aDriveThatCannotBeOpenedIsAStartUpErrorWithoutPrompt() throws Exception {
        LivemonProcess.Run r = livemon("info block\n", "-M", "none", "-nodefaults", "-display", "none",
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
        LivemonProcess.Run r = livemon("", "-drive", "file=b.img,if=none,id=v0");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("livemon: -drive file=b.img,if=none,id=v0: Could not open backing file: "
                + "Could not open 'a.img': No such file or directory\n");
    }

    @Test
    void anUnknownOptionIsAStartUpError() throws Exception {
        LivemonProcess.Run r = livemon("", "-bogus");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).startsWith("livemon: ").contains("-bogus");
    }

    @Test
    void pipeModeEchoesEachCommandAfterAFlushedPromptAndExitsAtEndOfInput() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "d.qcow2", "16M");
        LivemonProcess.Run r = livemon("info block-jobs\nnosuch\n", "-M", "none", "-drive", "file=d.qcow2,if=none,id=virtio0");
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
        LivemonProcess.Run r = livemon("info block\nquit\ninfo status\n", "-drive", "file=d.qcow2,if=virtio",
                "-drive", "file=e.qcow2,if=ide");
        assertThat(r.exit()).isZero();
        assertThat(r.out()).contains("virtio0 (#block").contains("ide0-hd0 (#block");
        assertThat(r.out()).endsWith("(qemu) quit\n");
    }

    @Test
    void strictScriptStopsAtTheFirstFailureWithStatusOne() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "d.qcow2", "16M");
        Files.writeString(dir.resolve("s.hmp"), "# a comment\n\ninfo status\nblock_job_pause virtio0\ninfo version\n");
        LivemonProcess.Run strict = livemon("", "--strict", "-x", "s.hmp", "-drive", "file=d.qcow2,if=none,id=virtio0");
        assertThat(strict.exit()).isEqualTo(1);
        assertThat(strict.out()).contains("(qemu) info status", "Error: Block job 'virtio0' not found")
                .doesNotContain("info version").doesNotContain("a comment");
        LivemonProcess.Run lenient = livemon("", "-x", "s.hmp", "-drive", "file=d.qcow2,if=none,id=virtio0");
        assertThat(lenient.exit()).isZero();
        assertThat(lenient.out()).contains("(qemu) info version");
    }

    @Test
    void versionAndHelp() throws Exception {
        assertThat(livemon("", "--version").out()).contains("livemon 0.1.0").contains("7.2.22");
        assertThat(livemon("", "--help").out()).contains("-drive", "--script", "--strict", "--events", "-qmp");
    }
}
