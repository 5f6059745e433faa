package io.livemon.monitor;

import io.livemon.block.BlockErrors;
import io.livemon.block.BlockException;
import java.io.PrintStream;

/** Handlers of the monitor's own commands: help, quit and livemon's script helpers. */
final class MonitorCommands {
    private MonitorCommands() {
    }

    /** How bare {@code help} shows the seed's {@code block_stream DEVICE BASE}, among livemon's extensions. */
    static final String SEED_STREAM_FORM =
            "block_stream device base -- as block_stream, with the base and no speed (livemon accepts this form)";

    static void help(HmpSession s, ParsedArgs a) {
        CommandTable table = s.table();
        PrintStream out = s.out();
        String name = a.has("name") ? a.getString("name").strip() : "";
        if (name.isEmpty()) {
            // sorted by name, as QEMU's help_cmd sorts the command table
            for (HmpCommand c : CommandTable.sortedByName(table.commands())) {
                if (!c.extension()) {
                    out.println(c.helpLine(""));
                }
            }
            out.println();
            out.println("livemon extensions (not in QEMU):");
            for (HmpCommand c : CommandTable.sortedByName(table.commands())) {
                if (c.extension()) {
                    out.println(c.helpLine(""));
                }
            }
            // the seed's form (../shared/README.md); `help block_stream` keeps QEMU's exact line for scripts
            out.println(SEED_STREAM_FORM);
            return;
        }
        String[] words = name.split("\\s+");
        if (words[0].equals("info")) {
            if (words.length == 1) {
                table.printInfoHelp(out);
                return;
            }
            HmpCommand sub = table.findInfo(words[1]);
            if (sub == null) {
                out.println("unknown command: 'info " + words[1] + "'");
            } else {
                out.println(sub.helpLine("info "));
            }
            return;
        }
        HmpCommand c = table.find(words[0]);
        if (c == null) {
            out.println("unknown command: '" + words[0] + "'");
        } else {
            out.println(c.helpLine(""));
        }
    }

    static void quit(HmpSession s, ParsedArgs a) {
        s.requestQuit();
    }

    static void waitJobs(HmpSession s, ParsedArgs a) throws BlockException {
        long seconds = a.has("timeout") ? a.getLong("timeout") : 60;
        try {
            if (!s.graph().awaitNoJobs(seconds * 1000)) {
                throw BlockErrors.jobsTimedOut(seconds);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw BlockErrors.jobsWaitInterrupted();
        }
    }

    static void sleep(HmpSession s, ParsedArgs a) {
        try {
            Thread.sleep(Math.max(0, a.getLong("ms")));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
