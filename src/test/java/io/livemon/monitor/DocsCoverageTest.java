package io.livemon.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * docs/monitor.md names every command of the monitor's command table (HMP commands and info items), so that the
 * user documentation cannot silently fall behind the commands livemon serves.
 */
class DocsCoverageTest {
    @Test
    void everyHmpCommandAndInfoItemIsInDocsMonitorMd() throws Exception {
        String doc = Files.readString(Path.of("docs", "monitor.md"));
        CommandTable table = new CommandTable();
        List<String> missing = new ArrayList<>();
        for (HmpCommand c : table.commands()) {
            if (!doc.contains("`" + c.name())) {
                missing.add(c.name());
            }
        }
        // the info items stand in one list: `info version|status|block [-n] ...|block-jobs`
        int at = doc.indexOf("`info ");
        String infoList = at < 0 ? "" : doc.substring(at + 6, doc.indexOf('`', at + 1));
        List<String> items = new ArrayList<>();
        for (String item : infoList.split("\\|")) {
            items.add(item.strip().split(" ")[0]);
        }
        for (HmpCommand c : table.infoCommands()) {
            if (!items.contains(c.name())) {
                missing.add("info " + c.name());
            }
        }
        assertThat(missing).as("commands missing from docs/monitor.md").isEmpty();
    }
}
