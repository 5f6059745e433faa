package io.livemon.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * livemon at a real terminal, headless: a tmux window (its own server socket) runs the monitor as a person would,
 * and the test reads the screen tmux keeps. What a newcomer saw go wrong is checked on that screen: the status
 * line's rate and time left against a 2 MiB/s limit over a 20 s stream, a window resize that must keep what is on
 * the screen, Tab twice listing without inserting, and the history kept under $HOME. .ci/run installs tmux.
 */
class TerminalSessionTest {
    private static final long MIB = 1 << 20;
    /** "stream virtio0 [###---] 12.5% 2 MiB/s eta 00:17 running" (rate and eta absent until the rate settles). */
    private static final Pattern STATUS =
            Pattern.compile("stream virtio0 \\[[#-]+\\]\\s+([0-9.]+)%\\s+(?:([0-9.]+) (KiB|MiB)/s eta (\\d+):(\\d+))?");

    @TempDir
    Path dir;
    private String socket;

    private static boolean tmuxAvailable() {
        try {
            return new ProcessBuilder("tmux", "-V").start().waitFor() == 0;
        } catch (Exception e) {
            return false;
        }
    }

    private String tmux(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("tmux", "-L", socket));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        p.waitFor();
        return out;
    }

    private String screen() throws Exception {
        return tmux("capture-pane", "-p", "-t", "t");
    }

    private void type(String keys) throws Exception {
        tmux("send-keys", "-t", "t", "-l", keys);
    }

    private void enter(String line) throws Exception {
        type(line);
        tmux("send-keys", "-t", "t", "Enter");
    }

    /** Waits up to 30 s for the screen to contain {@code text}; returns the screen. */
    private String await(String text) throws Exception {
        long end = System.currentTimeMillis() + 30_000;
        String s = screen();
        while (!s.contains(text) && System.currentTimeMillis() < end) {
            Thread.sleep(100);
            s = screen();
        }
        assertThat(s).as("screen").contains(text);
        return s;
    }

    @AfterEach
    void tearDown() throws Exception {
        if (socket != null) {
            tmux("kill-server");
        }
    }

    @Test
    void theScreenTellsTheTruthAndSurvivesAResize() throws Exception {
        Assumptions.assumeTrue(tmuxAvailable(), "tmux needed (.ci/run installs it)");
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        socket = "livemon-test-" + ProcessHandle.current().pid();
        // 40 MiB to copy at 2 MiB/s: a 20 s stream
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "a.img", "40M");
        QemuTools.qemuIo(dir, "a.img", "write -P 0xa1 0 40M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "a.img", "-F", "qcow2", "b.img");
        Path home = Files.createDirectories(dir.resolve("home"));
        Files.createDirectories(dir.resolve("tmp"));
        StringBuilder cmd = new StringBuilder("cd '" + dir + "' && HOME='" + home + "' exec");
        for (String a : LivemonProcess.javaCommand(dir, "-M", "none", "-nodefaults", "-display", "none",
                "-drive", "file=b.img,if=none,id=virtio0")) {
            cmd.append(" '").append(a.replace("'", "'\\''")).append('\'');
        }
        tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", cmd.toString());
        await("(qemu)");

        // Tab twice lists the candidates and leaves the line as typed
        type("info b");
        tmux("send-keys", "-t", "t", "Tab");
        Thread.sleep(300);
        tmux("send-keys", "-t", "t", "Tab");
        String listed = await("block-jobs");
        assertThat(listed).contains("(qemu) info block");
        tmux("send-keys", "-t", "t", "C-u");
        enter("info block");
        await("Backing file:     a.img (chain depth: 1)");

        enter("block_stream virtio0 2M");
        long start = System.nanoTime();
        // the status line, sampled until the job is gone; the time it ended is the truth its eta is judged by
        List<long[]> samples = new ArrayList<>(); // {ns since start, percent x10, rate B/s, eta s}
        boolean resized = false;
        String afterResize = null;
        while (System.nanoTime() - start < 60_000_000_000L) {
            String s = screen();
            Matcher m = STATUS.matcher(s);
            long t = System.nanoTime() - start;
            if (s.contains("BLOCK_JOB_COMPLETED")) {
                break; // the job ended (its event is printed above the prompt)
            }
            if (!m.find()) {
                Thread.sleep(100);
                continue;
            }
            if (m.group(2) != null) {
                double rate = Double.parseDouble(m.group(2)) * (m.group(3).equals("MiB") ? MIB : 1024);
                long eta = Long.parseLong(m.group(4)) * 60 + Long.parseLong(m.group(5));
                samples.add(new long[] {t, (long) (Double.parseDouble(m.group(1)) * 10), (long) rate, eta});
            }
            if (!resized && t > 8_000_000_000L) {
                tmux("resize-window", "-t", "t", "-x", "90", "-y", "26");
                resized = true;
                Thread.sleep(1000);
                afterResize = screen();
            }
            Thread.sleep(250);
        }
        long end = System.nanoTime() - start;
        assertThat(end).as("the stream ended").isLessThan(60_000_000_000L);

        // a resize keeps the screen: the banner, the earlier output and the prompt, with the status line again
        assertThat(afterResize).as("screen after the resize")
                .contains("livemon ").contains("Backing file:     a.img (chain depth: 1)")
                .contains("(qemu) block_stream virtio0 2M").containsPattern("stream virtio0 \\[");

        // after the first fifth of the job: rate within 10% of the limit, eta within 20% of the time really left
        int judged = 0;
        for (long[] s : samples) {
            if (s[1] < 200) {
                continue;
            }
            double left = (end - s[0]) / 1e9;
            assertThat((double) s[2]).as("rate at %.1f s", s[0] / 1e9).isBetween(0.9 * 2 * MIB, 1.1 * 2 * MIB);
            // + 1 s: the eta shows whole seconds, and the end is seen by polling the screen
            assertThat(Math.abs(s[3] - left)).as("eta %d s at %.1f s, %.1f s left", s[3], s[0] / 1e9, left)
                    .isLessThanOrEqualTo(0.2 * left + 1.0);
            judged++;
        }
        assertThat(judged).as("status lines judged").isGreaterThan(10);

        enter("quit");
        Path history = home.resolve(".livemon_history");
        long until = System.currentTimeMillis() + 10_000;
        while (!Files.exists(history) && System.currentTimeMillis() < until) {
            Thread.sleep(100);
        }
        assertThat(Files.readString(history)).contains("info block").contains("block_stream virtio0 2M");
    }
}
