package io.livemon.monitor;

import io.livemon.block.BlockGraph;
import java.io.PrintStream;

/**
 * What a command runs against: the block graph, where its output goes, and the monitor's own state.
 * {@code out} is the monitor; {@code stdout} is what QEMU writes to its standard output (qemu-io results,
 * {@code Formatting ...} lines) — the same stream at a stdio monitor, elsewhere for QMP's human-monitor-command.
 */
public final class HmpSession {
    private final BlockGraph graph;
    private final CommandTable table;
    private final PrintStream out;
    private final PrintStream stdout;
    /** Written by the command thread, read by the loop that runs it. */
    private volatile boolean quitRequested;
    /** Set by a command that printed its own failure (qemu-io); read and cleared by the interpreter. */
    private volatile boolean commandFailed;
    private final boolean paused;
    /** The lines entered at this monitor, for {@code info history}; shared with {@link #withOutput} copies. */
    private final CommandHistory history;

    public HmpSession(BlockGraph graph, CommandTable table, PrintStream out, PrintStream stdout, boolean paused) {
        this(graph, table, out, stdout, paused, new CommandHistory());
    }

    private HmpSession(BlockGraph graph, CommandTable table, PrintStream out, PrintStream stdout, boolean paused,
                       CommandHistory history) {
        this.graph = graph;
        this.table = table;
        this.out = out;
        this.stdout = stdout;
        this.paused = paused;
        this.history = history;
    }

    CommandHistory history() {
        return history;
    }

    public BlockGraph graph() {
        return graph;
    }

    public CommandTable table() {
        return table;
    }

    public PrintStream out() {
        return out;
    }

    public PrintStream stdout() {
        return stdout;
    }

    public void requestQuit() {
        quitRequested = true;
    }

    /** A command reports failure without an error message of its own (qemu-io's verification failed). */
    public void markCommandFailed() {
        commandFailed = true;
    }

    boolean takeCommandFailed() {
        boolean f = commandFailed;
        commandFailed = false;
        return f;
    }

    public boolean quitRequested() {
        return quitRequested;
    }

    /** Started with {@code -S}: {@code info status} says paused (prelaunch). */
    public boolean startedPaused() {
        return paused;
    }

    /** The same session with its output sent elsewhere (QMP's human-monitor-command). */
    public HmpSession withOutput(PrintStream newOut, PrintStream newStdout) {
        return new HmpSession(graph, table, newOut, newStdout, paused, history);
    }
}
