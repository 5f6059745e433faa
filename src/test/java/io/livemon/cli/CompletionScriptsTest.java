package io.livemon.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.junit.jupiter.api.Test;

/** The committed completion scripts must be what the option model generates now. */
class CompletionScriptsTest {
    private static final Path DIR = Paths.get(System.getProperty("livemon.root", "."), "completions");

    @Test
    void committedScriptsAreCurrent() throws Exception {
        String hint = "completions/ is stale: run java -cp target/classes:<deps> io.livemon.cli.CompletionScripts"
                + " completions (or mvn -q exec) and commit the result";
        assertThat(Files.readString(DIR.resolve("livemon.bash"), StandardCharsets.UTF_8)).as(hint)
                .isEqualTo(CompletionScripts.bash());
        assertThat(Files.readString(DIR.resolve("_livemon"), StandardCharsets.UTF_8)).as(hint)
                .isEqualTo(CompletionScripts.zsh());
    }

    @Test
    void bashScriptOffersQemuStyleAndLivemonOptions() {
        assertThat(CompletionScripts.bash()).contains("-drive", "--script", "--strict", "--events", "-qmp");
    }
}
