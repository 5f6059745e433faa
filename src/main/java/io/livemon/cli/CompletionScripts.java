package io.livemon.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import picocli.AutoComplete;

/**
 * The bash and zsh completion scripts for livemon's options, generated from the same picocli model that parses
 * them. {@code CompletionScriptsTest} fails when the committed scripts in {@code completions/} are stale; run this
 * class's main with the folder to regenerate them.
 */
public final class CompletionScripts {
    private CompletionScripts() {
    }

    /** The bash script (picocli's, which zsh also runs through bashcompinit). */
    public static String bash() {
        return AutoComplete.bash("livemon", Main.commandLine());
    }

    /** A zsh completion file that loads the bash script through zsh's bash compatibility layer. */
    public static String zsh() {
        return "#compdef livemon\n"
                + "# livemon completion for zsh: picocli's generated script, run through bashcompinit.\n"
                + "autoload -U +X compinit && compinit\n"
                + "autoload -U +X bashcompinit && bashcompinit\n"
                + bash();
    }

    public static void write(Path dir) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("livemon.bash"), bash(), StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("_livemon"), zsh(), StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws IOException {
        write(Paths.get(args.length > 0 ? args[0] : "completions"));
    }
}
