package io.livemon.monitor;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * glibc-style getopt for qemu-io commands: options may be clustered ({@code -qv}), take attached or separate
 * arguments ({@code -P0xa1}, {@code -P 0xa1}), and may follow the operands (argv is permuted); {@code --} ends
 * the options. Errors are printed the glibc way to stderr and reported as option '?'.
 */
final class QemuIoGetopt {
    record Opt(char option, String arg) {
    }

    final List<Opt> options = new ArrayList<>();
    final List<String> operands = new ArrayList<>();
    boolean error;

    QemuIoGetopt(List<String> argv, String optstring, PrintStream err) {
        String prog = argv.get(0);
        int i = 1;
        while (i < argv.size()) {
            String a = argv.get(i);
            if (a.equals("--")) {
                operands.addAll(argv.subList(i + 1, argv.size()));
                return;
            }
            if (a.length() < 2 || a.charAt(0) != '-') {
                operands.add(a);
                i++;
                continue;
            }
            for (int j = 1; j < a.length(); j++) {
                char c = a.charAt(j);
                int k = optstring.indexOf(c);
                if (c == ':' || k < 0) {
                    err.println(prog + ": invalid option -- '" + c + "'");
                    error = true;
                    return;
                }
                boolean takesArg = k + 1 < optstring.length() && optstring.charAt(k + 1) == ':';
                if (!takesArg) {
                    options.add(new Opt(c, null));
                    continue;
                }
                if (j + 1 < a.length()) {
                    options.add(new Opt(c, a.substring(j + 1)));
                } else if (i + 1 < argv.size()) {
                    options.add(new Opt(c, argv.get(i + 1)));
                    i++;
                } else {
                    err.println(prog + ": option requires an argument -- '" + c + "'");
                    error = true;
                    return;
                }
                break;
            }
            i++;
        }
    }
}
