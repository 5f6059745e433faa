package io.livemon.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * docs/monitor.md's command list is the one generated from the monitor's command table (HMP commands and info
 * items), so that the user documentation cannot silently fall behind the commands livemon serves.
 */
class DocsCoverageTest {
    @Test
    void docsMonitorMdHoldsTheCommandListGeneratedFromTheTable() throws Exception {
        String doc = Files.readString(Path.of("docs", "monitor.md"));
        assertThat(CommandDocs.section(doc)).as("docs/monitor.md's command list is stale: run "
                + "java -cp target/livemon.jar io.livemon.monitor.CommandDocs docs/monitor.md")
                .isEqualTo(CommandDocs.list(new CommandTable()));
    }
}
