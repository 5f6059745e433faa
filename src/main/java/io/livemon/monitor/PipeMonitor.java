package io.livemon.monitor;

import io.livemon.block.Event;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintStream;

/**
 * The monitor when standard input is not a terminal, following the conformance contract: a banner line, then for
 * each command the prompt (flushed before reading), the echoed command and its output; exit at {@code quit} or at
 * the end of input. Events are printed only when asked for ({@code --events}).
 */
public final class PipeMonitor {
    private final HmpSession session;
    private final BufferedReader in;
    private final PrintStream out;

    public PipeMonitor(HmpSession session, BufferedReader in, PrintStream out) {
        this.session = session;
        this.in = in;
        this.out = out;
    }

    /** Runs until quit or end of input; returns the exit status (1 when --strict stopped at a failure). */
    public int run(boolean printEvents, boolean strict) throws IOException {
        AutoCloseable sub = printEvents
                ? session.graph().events().subscribe(e -> printEvent(out, e))
                : null;
        try {
            out.println(Banner.text());
            out.flush();
            while (true) {
                out.print("(qemu) ");
                out.flush();
                String line = in.readLine();
                if (line == null) {
                    out.println();
                    return 0;
                }
                out.println(line);
                Interpreter.Result r = Interpreter.execute(session, line);
                out.flush();
                if (session.quitRequested()) {
                    return 0;
                }
                if (strict && r == Interpreter.Result.FAILED) {
                    return 1;
                }
            }
        } finally {
            if (sub != null) {
                try {
                    sub.close();
                } catch (Exception ignored) {
                    // unsubscribing cannot fail
                }
            }
        }
    }

    static void printEvent(PrintStream out, Event e) {
        synchronized (out) {
            out.println(EventNotice.format(e));
            out.flush();
        }
    }
}
