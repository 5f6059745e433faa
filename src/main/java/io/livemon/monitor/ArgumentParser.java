package io.livemon.monitor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Splits the rest of a monitor command line into arguments the way QEMU 7.2's HMP does, quirks included:
 * sizes stop at the first character they cannot use and the rest goes to the next argument without any
 * white space ({@code 1Q} = size 1 MiB then word {@code Q}); flags are only recognised at their position in
 * args_type, but a flag letter found anywhere later in args_type makes the word fall through
 * ({@code snapshot_blkdev -f x} gives device {@code -f}, because "snapshot-file" contains "-f"); integer
 * expressions may contain spaces ({@code 1 -1} is one argument: 0).
 */
public final class ArgumentParser {

    private ArgumentParser() {
    }

    /**
     * Parses {@code restOfLine} (the text after the command name) against {@code spec}.
     *
     * @param cmdName the prefix of error messages: the command name, or for info subcommands the bare item name
     */
    public static ParsedArgs parse(String cmdName, ArgSpec spec, String restOfLine) throws ArgumentParseException {
        return new State(cmdName, spec, restOfLine == null ? "" : restOfLine).run();
    }

    private static final class State {
        final String cmd;
        final ArgSpec spec;
        final String s;
        int p;
        final Map<String, Object> values = new LinkedHashMap<>();
        final List<String> stdout = new ArrayList<>();
        final List<String> warnings = new ArrayList<>();

        State(String cmd, ArgSpec spec, String s) {
            this.cmd = cmd;
            this.spec = spec;
            this.s = s;
        }

        char at(int i) {
            return i < s.length() ? s.charAt(i) : '\0';
        }

        void skipSpaces() {
            while (SizeParser.isCSpace(at(p))) {
                p++;
            }
        }

        ArgumentParseException fail(String message) {
            return fail(message, false);
        }

        ArgumentParseException fail(String message, boolean unterminated) {
            return new ArgumentParseException(message, stdout, warnings, unterminated);
        }

        ParsedArgs run() throws ArgumentParseException {
            for (ArgSpec.Param param : spec.params()) {
                switch (param.type()) {
                    case 'B', 's', 'F' -> stringArg(param);
                    case 'O' -> {
                        skipSpaces();
                        if (at(p) == '\0') {
                            break;
                        }
                        String v = getStr();
                        if (v == null) {
                            throw fail(cmd + ": string expected");
                        }
                        values.put(param.name(), v);
                    }
                    case 'S' -> {
                        skipSpaces();
                        if (param.optional() && at(p) == '\0') {
                            break;
                        }
                        if (p >= s.length()) {
                            throw fail(cmd + ": string expected");
                        }
                        values.put(param.name(), s.substring(p));
                        p = s.length();
                    }
                    case 'o' -> sizeArg(param);
                    case 'i', 'l', 'M' -> intArg(param);
                    case 'b' -> {
                        skipSpaces();
                        if (param.optional() && at(p) == '\0') {
                            break;
                        }
                        int beg = p;
                        while (at(p) > 0x20 && at(p) < 0x7f) {
                            p++;
                        }
                        String w = s.substring(beg, p);
                        if (w.equals("on")) {
                            values.put(param.name(), Boolean.TRUE);
                        } else if (w.equals("off")) {
                            values.put(param.name(), Boolean.FALSE);
                        } else {
                            throw fail("Expected 'on' or 'off'");
                        }
                    }
                    case '-' -> flagArg(param);
                    default -> throw fail(cmd + ": unknown type '" + param.type() + "'");
                }
            }
            skipSpaces();
            if (p < s.length()) {
                throw fail(cmd + ": extraneous characters at the end of line");
            }
            return new ParsedArgs(values, warnings);
        }

        void stringArg(ArgSpec.Param param) throws ArgumentParseException {
            skipSpaces();
            if (param.optional() && at(p) == '\0') {
                return;
            }
            String v = getStr();
            if (v == null) {
                switch (param.type()) {
                    case 'F' -> throw fail(cmd + ": filename expected");
                    case 'B' -> throw fail(cmd + ": block device name expected");
                    default -> throw fail(cmd + ": string expected");
                }
            }
            values.put(param.name(), v);
        }

        /** QEMU's get_str: a word, or a "quoted string" with \n \r \\ \' \" escapes; null on failure. */
        String getStr() {
            skipSpaces();
            if (at(p) == '\0') {
                return null;
            }
            StringBuilder q = new StringBuilder();
            if (at(p) == '"') {
                p++;
                while (p < s.length() && s.charAt(p) != '"') {
                    if (s.charAt(p) == '\\') {
                        p++;
                        char c = at(p);
                        p++;
                        switch (c) {
                            case 'n' -> c = '\n';
                            case 'r' -> c = '\r';
                            case '\\', '\'', '"' -> {
                            }
                            default -> {
                                stdout.add("unsupported escape code: '\\" + c + "'");
                                p = Math.min(p, s.length());
                                return null;
                            }
                        }
                        append(q, c);
                    } else {
                        append(q, s.charAt(p));
                        p++;
                    }
                }
                if (at(p) != '"') {
                    stdout.add("unterminated string");
                    return null;
                }
                p++;
            } else {
                while (p < s.length() && !SizeParser.isCSpace(s.charAt(p))) {
                    append(q, s.charAt(p));
                    p++;
                }
            }
            return q.toString();
        }

        private static void append(StringBuilder q, char c) {
            if (q.length() < 1023) { // QEMU's 1024-byte buffer silently truncates
                q.append(c);
            }
        }

        void sizeArg(ArgSpec.Param param) throws ArgumentParseException {
            skipSpaces();
            if (param.optional() && at(p) == '\0') {
                return;
            }
            if (param.optional() && param.name().equals(spec.sizeOrStringParam()) && !startsLikeNumber(at(p))) {
                return; // livemon extension: the word belongs to the next argument
            }
            SizeParser.Result r = SizeParser.parseMiB(s, p);
            if (r.warning() != null) {
                warnings.add("warning: " + r.warning());
            }
            if (!r.ok()) {
                throw fail("invalid size");
            }
            values.put(param.name(), r.value());
            p = r.end();
        }

        static boolean startsLikeNumber(char c) {
            return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == '"';
        }

        void intArg(ArgSpec.Param param) throws ArgumentParseException {
            skipSpaces();
            if (param.optional() && at(p) == '\0') {
                return;
            }
            MonitorExpression expr = new MonitorExpression(s, p);
            long val;
            try {
                val = expr.evaluate();
            } catch (MonitorExpression.ExprError e) {
                throw fail(e.getMessage());
            }
            p = expr.position();
            if (param.type() == 'i' && (val >>> 32) != 0) {
                throw fail("'" + cmd + "' has failed: integer is for 32-bit values");
            } else if (param.type() == 'M') {
                if (val < 0) {
                    throw fail("enter a positive value");
                }
                val *= 1024L * 1024L;
            }
            values.put(param.name(), val);
        }

        void flagArg(ArgSpec.Param param) throws ArgumentParseException {
            int tmp = p;
            skipSpaces();
            if (at(p) != '-') {
                return;
            }
            p++;
            char c = at(p);
            if (c != param.flag()) {
                if (!spec.flagOccursAfter(param, c)) {
                    if (c == '\0') {
                        // QEMU prints a NUL character, which ends the output line early (no newline)
                        throw fail(cmd + ": unsupported option -", true);
                    }
                    throw fail(cmd + ": unsupported option -" + c);
                }
                p = tmp; // a later flag, or a word that merely contains "-c" somewhere later in args_type
                return;
            }
            p++;
            values.put(param.name(), Boolean.TRUE);
        }
    }
}
