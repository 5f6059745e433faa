package io.livemon.qmp;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** docs/qmp.md's command list is generated from the commands livemon serves, so it cannot fall behind them. */
class QmpDocsCoverageTest {
    @Test
    void docsQmpMdHoldsTheCommandListGeneratedFromTheServedCommands() throws Exception {
        String doc = Files.readString(Path.of("docs", "qmp.md"));
        assertThat(QmpDocs.section(doc)).as("docs/qmp.md's command list is stale: run "
                + "java -cp target/livemon.jar io.livemon.qmp.QmpDocs docs/qmp.md")
                .isEqualTo(QmpDocs.list());
    }
}
