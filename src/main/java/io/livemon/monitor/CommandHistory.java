package io.livemon.monitor;

import java.util.ArrayList;
import java.util.List;

/**
 * The monitor's command history as QEMU's readline keeps it for {@code info history} (util/readline.c): at most 64
 * lines, oldest first; a line entered again moves to the end instead of being stored twice. Thread-safe (the QMP
 * thread's human-monitor-command and the prompt may add at once).
 */
final class CommandHistory {
    /** QEMU's READLINE_MAX_CMDS. */
    static final int MAX = 64;

    /** Guarded by this. */
    private final List<String> lines = new ArrayList<>();

    synchronized void add(String line) {
        if (line.isEmpty()) {
            return;
        }
        lines.remove(line);
        if (lines.size() == MAX) {
            lines.remove(0);
        }
        lines.add(line);
    }

    synchronized List<String> lines() {
        return List.copyOf(lines);
    }
}
