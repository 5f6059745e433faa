package io.livemon.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.block.BlockGraph;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** help and info history as QEMU 7.2 prints them (recorded from its HMP). */
class MonitorCommandsTest {
    @TempDir
    Path dir;

    private String run(String... lines) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        try (BlockGraph g = new BlockGraph(dir)) {
            HmpSession s = new HmpSession(g, new CommandTable(), out, out, false);
            for (String l : lines) {
                Interpreter.execute(s, l);
            }
        }
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void infoHistoryListsTheLinesIncludingItselfAndMovesARepeatToTheEnd() {
        assertThat(run("info status", "info version", "info status", "info history"))
                .endsWith("0: 'info version'\n1: 'info status'\n2: 'info history'\n");
    }

    @Test
    void helpIsSortedByCommandNameAsQemuSortsIt() {
        List<String> names = run("help").lines().takeWhile(l -> !l.isEmpty())
                .filter(l -> !l.startsWith("\t") && !l.startsWith("[")).map(l -> l.split("[ |]")[0]).toList();
        assertThat(names).isSorted().contains("block_stream", "commit", "drive_mirror", "snapshot_blkdev");
        List<String> info = run("help info").lines().map(l -> l.split(" ")[1]).toList();
        assertThat(info).isSorted().contains("history", "block-jobs");
    }

    @Test
    void helpShowsTheSeedsStreamFormAmongLivemonsOwnAndHelpBlockStreamStaysQemus() {
        String help = run("help");
        String extensions = help.substring(help.indexOf("livemon extensions (not in QEMU):"));
        assertThat(extensions).contains("block_stream device base -- ");
        // QEMU 7.2.22's exact line (conformance scenario 13)
        assertThat(run("help block_stream"))
                .isEqualTo("block_stream device [speed [base]] -- copy data from a backing file into a block device\n");
    }
}
