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

    /**
     * The bash script (picocli's, which zsh also runs through bashcompinit), with file names completed after
     * {@code -drive ...file=} (picocli sees {@code -drive} as a string and completes nothing there).
     */
    public static String bash() {
        String script = AutoComplete.bash("livemon", Main.commandLine());
        String anchor = "  type compopt &>/dev/null && compopt +o default\n";
        int at = script.indexOf(anchor);
        if (at < 0) {
            throw new IllegalStateException("picocli's bash script changed: no place for the -drive completion");
        }
        return script.substring(0, at) + DRIVE_FILE_COMPLETION + script.substring(at);
    }

    /**
     * Completes the path after {@code file=} in a {@code -drive} argument and offers {@code file=} right after
     * {@code -drive}. Works from the line itself, because bash splits words at {@code =} (COMP_WORDBREAKS): the word
     * being completed is then the path, or {@code =} itself, or (where {@code =} does not split) the whole
     * {@code key=value} list.
     */
    private static final String DRIVE_FILE_COMPLETION = """
              # livemon: -drive ...file=PATH completes PATH; right after -drive, offer file=
              local drive_line="${COMP_LINE:0:COMP_POINT}"
              if [[ "${drive_line}" =~ (^|[[:space:]])-drive[[:space:]]+([^[:space:]]*,)?file=([^,[:space:]]*)$ ]]; then
                local drive_path="${BASH_REMATCH[3]}" IFS=$'\\n'
                type compopt &>/dev/null && compopt -o filenames
                COMPREPLY=( $( compgen -f -- "${drive_path}" ) )
                if [[ "${curr_word}" == "=" ]]; then
                  COMPREPLY=( "${COMPREPLY[@]/#/=}" )
                elif [[ "${curr_word}" == *=* ]]; then
                  COMPREPLY=( "${COMPREPLY[@]/#/${curr_word%=*}=}" )
                fi
                return 0
              fi
              if [[ "${prev_word}" == "-drive" && -z "${curr_word}" ]]; then
                type compopt &>/dev/null && compopt -o nospace
                COMPREPLY=( "file=" )
                return 0
              fi

            """;

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
