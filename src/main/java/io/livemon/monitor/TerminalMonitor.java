package io.livemon.monitor;

import io.livemon.block.JobInfo;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.jline.reader.EndOfFileException;
import org.jline.reader.LineReader;
import org.jline.reader.LineReaderBuilder;
import org.jline.reader.UserInterruptException;
import org.jline.terminal.Terminal;
import org.jline.terminal.TerminalBuilder;
import org.jline.utils.AttributedString;

/**
 * The monitor at a terminal: JLine line editing, history across runs, completion from the command table, event
 * notices printed above the prompt, and a status line with each running job's progress.
 */
public final class TerminalMonitor {
    private final HmpSession session;
    /** Tab behaviour: false (default) lists candidates as QEMU and bash do; true cycles through them in a menu. */
    private boolean completionMenu;

    public TerminalMonitor(HmpSession session) {
        this.session = session;
    }

    /** With {@code true}, a second Tab on an ambiguous word opens JLine's cycling menu instead of listing. */
    public TerminalMonitor completionMenu(boolean on) {
        this.completionMenu = on;
        return this;
    }

    /** Runs the REPL on the system terminal; {@code banner}: print the banner first (not after a replayed script). */
    public int run(Path historyFile, boolean banner) throws IOException {
        try (Terminal terminal = TerminalBuilder.builder().system(true).build()) {
            return run(terminal, historyFile, banner);
        }
    }

    /** Runs the REPL on a given terminal (tests pass a dumb terminal over piped streams). */
    public int run(Terminal terminal, Path historyFile) {
        return run(terminal, historyFile, true);
    }

    private int run(Terminal terminal, Path historyFile, boolean banner) {
        LineReader reader = LineReaderBuilder.builder()
                .terminal(terminal)
                .appName("livemon")
                .completer(new MonitorCompleter(session))
                .variable(LineReader.HISTORY_FILE, historyFile)
                // As QEMU's readline and bash: Tab inserts the common prefix and lists the candidates, without
                // headings; no menu that inserts a candidate on the second Tab (unless asked for).
                .option(LineReader.Option.AUTO_MENU, completionMenu)
                .option(LineReader.Option.AUTO_LIST, true)
                .option(LineReader.Option.LIST_AMBIGUOUS, true)
                .option(LineReader.Option.GROUP, false)
                .option(LineReader.Option.AUTO_GROUP, false)
                .build();
        PrintStream out = new PrintStream(terminal.output(), true, StandardCharsets.UTF_8);
        HmpSession s = session.withOutput(out, out);
        if (banner) {
            out.println(Banner.text());
        }
        AutoCloseable sub = session.graph().events().subscribe(e -> reader.printAbove(EventNotice.format(e)));
        ScheduledExecutorService progress = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "progress-line");
            t.setDaemon(true);
            return t;
        });
        JobProgressLine line = new JobProgressLine();
        // our own status, not the terminal's registered one: see ProgressStatus for why
        ProgressStatus status = new ProgressStatus(terminal);
        if (status.isSupported()) {
            progress.scheduleAtFixedRate(() -> updateStatus(status, line), 250, 250, TimeUnit.MILLISECONDS);
        }
        try {
            while (!s.quitRequested()) {
                String input;
                try {
                    input = reader.readLine("(qemu) ");
                } catch (UserInterruptException e) {
                    continue;
                } catch (EndOfFileException e) {
                    break;
                }
                Interpreter.execute(s, input);
                out.flush();
            }
            return 0;
        } finally {
            progress.shutdownNow();
            try {
                progress.awaitTermination(1, TimeUnit.SECONDS); // no last draw after the lines are removed
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            status.close();
            try {
                sub.close();
            } catch (Exception ignored) {
                // unsubscribing cannot fail
            }
            try {
                reader.getHistory().save();
            } catch (IOException ignored) {
                // a history that cannot be saved is not worth failing the exit for
            }
        }
    }

    private void updateStatus(ProgressStatus status, JobProgressLine line) {
        status.relayout();
        List<JobInfo> jobs = session.graph().jobInfos();
        List<AttributedString> lines = new ArrayList<>();
        long now = System.nanoTime();
        for (JobInfo j : jobs) {
            lines.add(new AttributedString(line.render(j, now)));
        }
        line.forgetExcept(jobs);
        status.update(lines);
    }
}
