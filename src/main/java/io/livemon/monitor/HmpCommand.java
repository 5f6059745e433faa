package io.livemon.monitor;

import java.util.List;

/**
 * One entry of the monitor's command table: its name (with aliases, {@code help|?}), its arguments in QEMU's
 * args_type mini-language, the parameter synopsis and help text that {@code help} prints, and the handler.
 *
 * @param names     the name and its aliases, first is the primary name
 * @param argsType  QEMU's args_type string, e.g. {@code device:B,speed:o?,base:s?}
 * @param params    the synopsis after the name, e.g. {@code device [speed [base]]}
 * @param help      the text after {@code --}; continuation lines start with tabs
 * @param extension true for livemon-only commands (listed under their own heading)
 */
public record HmpCommand(List<String> names, String argsType, String params, String help, HmpHandler handler,
                         boolean extension) {

    public String name() {
        return names.get(0);
    }

    public boolean hasName(String n) {
        return names.contains(n);
    }

    /** The help line as QEMU prints it: {@code name|alias params -- help}. */
    public String helpLine(String prefix) {
        return prefix + String.join("|", names) + " " + params + " -- " + help;
    }

    public static HmpCommand of(String names, String argsType, String params, String help, HmpHandler handler) {
        return new HmpCommand(List.of(names.split("\\|")), argsType, params, help, handler, false);
    }

    public static HmpCommand extension(String name, String argsType, String params, String help,
                                       HmpHandler handler) {
        return new HmpCommand(List.of(name), argsType, params, help, handler, true);
    }
}
