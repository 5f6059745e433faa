package io.livemon.monitor;

import io.livemon.block.BlockException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs one monitor command line: finds the command (or {@code info} item) in the table, parses its arguments,
 * calls its handler and prints errors as QEMU does. Every front end (terminal, pipe, script, QMP's
 * human-monitor-command) goes through here.
 */
public final class Interpreter {
    private static final Logger LOG = LoggerFactory.getLogger(Interpreter.class);

    private Interpreter() {
    }

    /** Outcome of one line, for {@code --strict} script replay. */
    public enum Result { OK, FAILED }

    public static Result execute(HmpSession session, String line) {
        CommandTable table = session.table();
        String rest = line.stripLeading();
        if (rest.isEmpty()) {
            return Result.OK;
        }
        session.history().add(line); // before it runs: QEMU's "info history" lists itself
        String name = firstWord(rest);
        rest = rest.substring(name.length());
        HmpCommand cmd = table.find(name);
        if (cmd == null) {
            session.out().println("unknown command: '" + name + "'");
            return Result.FAILED;
        }
        String errorPrefix = cmd.name();
        String helpName = cmd.name();
        if (cmd.name().equals("info")) {
            String item = rest.stripLeading();
            if (item.isEmpty()) {
                table.printInfoHelp(session.out());
                return Result.OK;
            }
            String itemName = firstWord(item);
            HmpCommand sub = table.findInfo(itemName);
            if (sub == null) {
                session.out().println("unknown command: 'info " + itemName + "'");
                return Result.FAILED;
            }
            cmd = sub;
            rest = item.substring(itemName.length());
            errorPrefix = sub.name();
            helpName = "info " + sub.name();
        }
        ParsedArgs args;
        try {
            args = ArgumentParser.parse(errorPrefix, table.spec(cmd), rest);
        } catch (ArgumentParseException e) {
            for (String w : e.stderrWarnings()) {
                System.err.println("livemon: " + w);
            }
            for (String l : e.stdoutLines()) {
                session.stdout().println(l);
            }
            if (e.isUnterminated()) {
                session.out().print(e.getMessage());
            } else {
                session.out().println(e.getMessage());
            }
            session.out().println("Try \"help " + helpName + "\" for more information");
            return Result.FAILED;
        }
        for (String warning : args.stderrWarnings()) {
            System.err.println("livemon: " + warning);
        }
        try {
            session.takeCommandFailed();
            cmd.handler().run(session, args);
            return session.takeCommandFailed() ? Result.FAILED : Result.OK;
        } catch (BlockException e) {
            session.out().println(CommandTable.bareErrors(cmd) ? e.getMessage() : "Error: " + e.getMessage());
            return Result.FAILED;
        } catch (RuntimeException e) {
            LOG.error("command '{}' failed", line, e);
            session.out().println("Error: " + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()));
            return Result.FAILED;
        }
    }

    /** QEMU takes the command name up to the first white space. */
    static String firstWord(String s) {
        int i = 0;
        while (i < s.length() && !Character.isWhitespace(s.charAt(i))) {
            i++;
        }
        return s.substring(0, i);
    }
}
