package io.livemon.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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

    /**
     * Runs the bash script's completion function on a command line (cursor at its end) split into words as bash
     * splits them, in {@code dir}; returns the candidates.
     */
    private static List<String> complete(Path dir, String line, String... words) throws Exception {
        StringBuilder w = new StringBuilder();
        for (String word : words) {
            w.append(" '").append(word).append('\'');
        }
        String program = "source '" + DIR.resolve("livemon.bash").toAbsolutePath() + "' 2>/dev/null\n"
                + "COMP_LINE='" + line + "'; COMP_POINT=${#COMP_LINE}\n"
                + "COMP_WORDS=(" + w + " ); COMP_CWORD=" + (words.length - 1) + "\n"
                + "_picocli_livemon 2>/dev/null\n"
                + "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
        Process p = new ProcessBuilder("bash", "-c", program).directory(dir.toFile()).redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(out).isZero();
        return out.lines().filter(l -> !l.isEmpty()).sorted().toList();
    }

    @Test
    void driveFileCompletesFileNames(@TempDir Path dir) throws Exception {
        Files.createFile(dir.resolve("disk-a.qcow2"));
        Files.createFile(dir.resolve("disk-b.qcow2"));
        Files.createFile(dir.resolve("notes.txt"));
        // bash splits at '=' (its default COMP_WORDBREAKS): the word being completed is the path
        assertThat(complete(dir, "livemon -drive if=none,file=disk-",
                "livemon", "-drive", "if", "=", "none,file", "=", "disk-"))
                .containsExactly("disk-a.qcow2", "disk-b.qcow2");
        // right after '=': the word is '=' itself, so the candidates keep it
        assertThat(complete(dir, "livemon -drive file=", "livemon", "-drive", "file", "="))
                .containsExactly("=disk-a.qcow2", "=disk-b.qcow2", "=notes.txt");
        // where '=' does not split words, the whole key=value list is the word
        assertThat(complete(dir, "livemon -drive id=x,file=n", "livemon", "-drive", "id=x,file=n"))
                .containsExactly("id=x,file=notes.txt");
        assertThat(complete(dir, "livemon -drive ", "livemon", "-drive", "")).containsExactly("file=");
        // other options keep picocli's completion
        assertThat(complete(dir, "livemon --scr", "livemon", "--scr")).containsExactly("--script");
    }
}
