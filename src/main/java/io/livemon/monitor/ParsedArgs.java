package io.livemon.monitor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The arguments of one monitor command, by their args_type names. */
public final class ParsedArgs {
    private final Map<String, Object> values;
    private final List<String> stderrWarnings;

    ParsedArgs(Map<String, Object> values, List<String> stderrWarnings) {
        this.values = Collections.unmodifiableMap(new LinkedHashMap<>(values));
        this.stderrWarnings = List.copyOf(stderrWarnings);
    }

    /** Whether the argument was given (flags: whether it was set). */
    public boolean has(String name) {
        return values.containsKey(name);
    }

    /** A string argument (types B, s, S, F, O), or null when absent. */
    public String getString(String name) {
        Object v = values.get(name);
        return v == null ? null : v.toString();
    }

    /** A number argument (types o, i, l, M), or null when absent. */
    public Long getLong(String name) {
        Object v = values.get(name);
        return v instanceof Long l ? l : null;
    }

    /** A flag ({@code -x}) or boolean ({@code b}) argument; false when absent. */
    public boolean getFlag(String name) {
        return values.get(name) instanceof Boolean b && b;
    }

    /** All values, in parse order (String, Long or Boolean). */
    public Map<String, Object> asMap() {
        return values;
    }

    /**
     * Warnings QEMU would print to stderr while parsing, without program prefix (print as
     * {@code livemon: <line>}), e.g. {@code warning: Using a multiplier suffix on hex numbers is deprecated: 0x10k}.
     */
    public List<String> stderrWarnings() {
        return stderrWarnings;
    }

    @Override
    public String toString() {
        return values.toString();
    }
}
