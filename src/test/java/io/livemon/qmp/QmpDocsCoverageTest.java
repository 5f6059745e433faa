package io.livemon.qmp;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** docs/qmp.md names every QMP command livemon serves, so that the document cannot fall behind the server. */
class QmpDocsCoverageTest {
    @TempDir
    Path dir;

    @Test
    void everyServedCommandIsInDocsQmpMd() throws Exception {
        String doc = Files.readString(Path.of("docs", "qmp.md"));
        List<String> missing = new ArrayList<>();
        try (QmpFixture fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT)) {
            for (QmpCommand c : fx.server.commands()) {
                if (!doc.contains("`" + c.name() + "`") && !doc.contains("`" + c.name() + " ")
                        && !doc.contains(c.name() + "`")) {
                    missing.add(c.name());
                }
            }
        }
        assertThat(missing).as("QMP commands missing from docs/qmp.md").isEmpty();
    }
}
