package io.livemon.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.block.BlockGraph;
import io.livemon.block.DriveOptions;
import io.livemon.testsupport.QemuTools;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.jline.terminal.Attributes;
import org.jline.terminal.Terminal;
import org.jline.terminal.impl.ExternalTerminal;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The terminal REPL, driven headless: a dumb terminal over piped streams, keystrokes as strings. */
class TerminalMonitorTest {
    @TempDir
    Path dir;
    BlockGraph graph;

    @BeforeEach
    void setUp() throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "base.qcow2", "8M");
        QemuTools.qemuIo(dir, "base.qcow2", "write -P 0x11 0 1M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        graph = new BlockGraph(dir);
        graph.addDrive(DriveOptions.parse("file=top.qcow2,if=none,id=virtio0,node-name=node-top"));
    }

    @AfterEach
    void tearDown() {
        graph.close();
    }

    /** Types {@code keys} into a fresh REPL and returns everything it printed. */
    private String type(String keys) throws Exception {
        return type(new ByteArrayInputStream(keys.getBytes(StandardCharsets.UTF_8)));
    }

    /** Types the chunks with a pause between them, as a person would (signals need the reader to be waiting). */
    private String typeSlowly(String... chunks) throws Exception {
        PipedOutputStream keyboard = new PipedOutputStream();
        PipedInputStream in = new PipedInputStream(keyboard);
        Thread typist = new Thread(() -> {
            try (keyboard) {
                for (String c : chunks) {
                    Thread.sleep(200);
                    keyboard.write(c.getBytes(StandardCharsets.UTF_8));
                    keyboard.flush();
                }
                Thread.sleep(200);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        typist.start();
        String out = type(in);
        typist.join();
        return out;
    }

    private String type(InputStream keys) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        // A terminal over piped streams with an "ansi" type: JLine's reader then edits and completes as at a real
        // terminal, and the terminal turns ^C into SIGINT as a tty does.
        try (Terminal t = new ExternalTerminal("test", "ansi", keys, out, StandardCharsets.UTF_8)) {
            Attributes attrs = t.getAttributes();
            attrs.setLocalFlag(Attributes.LocalFlag.ISIG, true);
            t.setAttributes(attrs);
            PrintStream ps = new PrintStream(out, true, StandardCharsets.UTF_8);
            HmpSession session = new HmpSession(graph, new CommandTable(), ps, ps, false);
            int rc = new TerminalMonitor(session).run(t, dir.resolve("history"));
            assertThat(rc).isZero();
        }
        return out.toString(StandardCharsets.UTF_8).replaceAll("\u001b\\[[0-9;?]*[A-Za-z]", "")
                .replace("\r", "");
    }

    /**
     * The lines the reader accepted, in order, exactly as the buffer stood at Enter (after every Tab): JLine's
     * history file, one {@code time:line} entry per line.
     */
    private List<String> acceptedLines() throws Exception {
        return Files.readAllLines(dir.resolve("history")).stream()
                .map(l -> l.substring(l.indexOf(':') + 1))
                .toList();
    }

    @Test
    void tabCompletesCommandNamesInfoItemsAndDevicesAndNodes() throws Exception {
        String out = type("block_job_comp\tvirtio0\ninfo block-j\t\nqemu-io node-t\t\"length\"\n");
        assertThat(acceptedLines()).containsExactly("block_job_complete virtio0", "info block-jobs",
                "qemu-io node-top \"length\"");
        assertThat(out).contains("Error: Block job 'virtio0' not found");
        assertThat(out).contains("No active jobs");
        assertThat(out).contains("8 MiB");
    }

    @Test
    void tabCompletesFileNamesRelativeToTheWorkingDirectory() throws Exception {
        String out = type("snapshot_blkdev virtio0 new.qcow2 qc\t\ninfo block\n");
        assertThat(acceptedLines()).containsExactly("snapshot_blkdev virtio0 new.qcow2 qcow2", "info block");
        assertThat(out).contains("virtio0 (#block");
        assertThat(out).contains("new.qcow2 (qcow2)");
        assertThat(Files.exists(dir.resolve("new.qcow2"))).isTrue();
    }

    @Test
    void tabAtATargetPositionLeavesOutOpenImages() throws Exception {
        // base.qcow2 is the open drive's backing file: "b" + Tab completes to the only free file
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "bother.qcow2", "8M");
        String out = type("snapshot_blkdev virtio0 b\t\n");
        assertThat(acceptedLines()).containsExactly("snapshot_blkdev virtio0 bother.qcow2");
        assertThat(out).contains("Formatting 'bother.qcow2'");
        assertThat(out).doesNotContain("Failed to get");
    }

    @Test
    void tabTwiceListsWithoutInserting() throws Exception {
        // no common prefix between virtio0 and node-top: the Tabs list them and the line stays "qemu-io "
        String out = type("qemu-io \t\t\n");
        assertThat(acceptedLines()).containsExactly("qemu-io");
        assertThat(out).contains("virtio0").contains("node-top");
        assertThat(out).contains("block device name expected");
        assertThat(out).doesNotContain("others").doesNotContain("devices\n");
    }

    @Test
    void tabAtTheSeedsBasePositionOffersTheChainsBackingFiles() throws Exception {
        // "block_stream virtio0 <Tab>": the only backing file of the chain is base.qcow2, so the stream keeps it
        String out = type("block_stream virtio0 \t\nwait_jobs\ninfo block\n");
        assertThat(acceptedLines()).containsExactly("block_stream virtio0 base.qcow2", "wait_jobs", "info block");
        assertThat(out).contains("Backing file:     base.qcow2");
    }

    @Test
    void tabAfterAJobCommandOffersOnlyDevicesWithAJob() throws Exception {
        String out = type("block_job_cancel \t\n");
        assertThat(acceptedLines()).containsExactly("block_job_cancel");
        assertThat(out).contains("block device name expected");
    }

    @Test
    void tabAfterADashOffersTheFlags() throws Exception {
        String out = type("block_job_cancel -\tvirtio0\n");
        assertThat(acceptedLines()).containsExactly("block_job_cancel -f virtio0");
        assertThat(out).contains("Error: Block job 'virtio0' not found");
    }

    @Test
    void historyIsKeptAcrossRuns() throws Exception {
        type("info status\n");
        assertThat(Files.readString(dir.resolve("history"))).contains("info status");
        // Ctrl-P recalls the previous line in a new session.
        String out = type("\u0010\n");
        assertThat(out).contains("VM status: running");
    }

    @Test
    void ctrlCClearsTheLineAndTheMonitorGoesOn() throws Exception {
        String out = typeSlowly("info blo", "\u0003", "info version\n");
        assertThat(out).contains("7.2.22");
        assertThat(out).doesNotContain("unknown command");
    }

    @Test
    void eventsArePrintedAboveThePrompt() throws Exception {
        String out = type("block_stream virtio0\nwait_jobs\nquit\n");
        assertThat(out).contains("[event] JOB_STATUS_CHANGE status=created id=virtio0");
        assertThat(out).contains("[event] BLOCK_JOB_COMPLETED device=virtio0");
    }
}
