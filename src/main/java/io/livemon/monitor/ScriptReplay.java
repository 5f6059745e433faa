package io.livemon.monitor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

/**
 * Replays a monitor script ({@code -x FILE}): each command is shown as at a non-terminal monitor (prompt, command,
 * output). Blank lines and {@code #} comments are skipped.
 */
public final class ScriptReplay {
    private ScriptReplay() {
    }

    /** Returns 0, or 1 when {@code strict} and a command failed (or the script cannot be read). */
    public static int replay(HmpSession session, Path script, PrintStream out, boolean strict) {
        List<String> lines;
        try {
            lines = Files.readAllLines(script, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            System.err.println("livemon: " + script + ": No such file or directory");
            return 1;
        } catch (IOException e) {
            System.err.println("livemon: " + script + ": " + e.getMessage());
            return 1;
        }
        for (String line : lines) {
            String t = line.strip();
            if (t.isEmpty() || t.startsWith("#")) {
                continue;
            }
            out.println("(qemu) " + t);
            Interpreter.Result r = Interpreter.execute(session, t);
            out.flush();
            if (session.quitRequested()) {
                return 0;
            }
            if (strict && r == Interpreter.Result.FAILED) {
                return 1;
            }
        }
        return 0;
    }
}
