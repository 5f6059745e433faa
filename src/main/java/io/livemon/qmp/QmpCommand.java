package io.livemon.qmp;

import io.livemon.block.BlockErrors;
import io.livemon.block.BlockException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One QMP command: its name, its argument schema (checked as QEMU's input visitor checks it, with QEMU's messages)
 * and its handler.
 */
public record QmpCommand(String name, List<Param> params, Flags flags, Handler handler) {

    /** How a command runs: {@code exclusive} commands run one at a time (QEMU runs every command under its big lock). */
    public enum Flags { QUERY, EXCLUSIVE }

    @FunctionalInterface
    public interface Handler {
        Object run(QmpContext ctx, Args args) throws QmpException, BlockException;
    }

    /** Argument types of the QAPI schema that livemon's commands use. */
    public enum Kind { STR, INT, UINT32, BOOL, ENUM, ENUM_LIST }

    /** One argument: name, type, whether it may be left out, and the values of an enum. */
    public record Param(String name, Kind kind, boolean optional, Set<String> values) {
        static Param parse(String spec) {
            // "?name:type" with type str|int|uint32|bool|enum(a|b)|enum-list(a|b)
            boolean optional = spec.startsWith("?");
            String s = optional ? spec.substring(1) : spec;
            int colon = s.indexOf(':');
            String name = s.substring(0, colon);
            String type = s.substring(colon + 1);
            if (type.startsWith("enum(") || type.startsWith("enum-list(")) {
                String vals = type.substring(type.indexOf('(') + 1, type.length() - 1);
                Kind k = type.startsWith("enum(") ? Kind.ENUM : Kind.ENUM_LIST;
                return new Param(name, k, optional, new java.util.LinkedHashSet<>(List.of(vals.split("\\|"))));
            }
            Kind k = switch (type) {
                case "str" -> Kind.STR;
                case "int" -> Kind.INT;
                case "uint32" -> Kind.UINT32;
                case "bool" -> Kind.BOOL;
                default -> throw new IllegalArgumentException("bad type " + type);
            };
            return new Param(name, k, optional, Set.of());
        }
    }

    /** The schema of a command whose arguments its handler checks ({@link Args#all}). */
    static final String ANY_MEMBERS = "**";

    static QmpCommand of(String name, String schema, Flags flags, Handler handler) {
        if (schema.equals(ANY_MEMBERS)) {
            return new QmpCommand(name, List.of(new Param(ANY_MEMBERS, Kind.STR, true, Set.of())), flags, handler);
        }
        List<Param> ps = new ArrayList<>();
        for (String p : schema.isBlank() ? new String[0] : schema.trim().split("\\s+")) {
            ps.add(Param.parse(p));
        }
        return new QmpCommand(name, List.copyOf(ps), flags, handler);
    }

    /** Checks {@code arguments} against the schema; members in schema order first, then unexpected ones. */
    Args check(Map<String, Object> arguments) throws QmpException {
        Map<String, Object> in = arguments == null ? Map.of() : arguments;
        Map<String, Object> out = new LinkedHashMap<>();
        if (params.size() == 1 && params.get(0).name().equals(ANY_MEMBERS)) {
            // a QAPI union checked by its handler (blockdev-add's BlockdevOptions), members as given
            out.putAll(in);
            return new Args(out);
        }
        for (Param p : params) {
            Object v = in.get(p.name());
            if (v == null) {
                if (!p.optional()) {
                    throw QmpException.of(BlockErrors.missingParameter(p.name()));
                }
                continue;
            }
            out.put(p.name(), convert(p, v));
        }
        for (String k : in.keySet()) {
            if (!out.containsKey(k) && params.stream().noneMatch(p -> p.name().equals(k))) {
                throw QmpException.of(BlockErrors.unexpectedParameter(k));
            }
        }
        return new Args(out);
    }

    private static Object convert(Param p, Object v) throws QmpException {
        switch (p.kind()) {
            case STR:
                if (v instanceof String) {
                    return v;
                }
                throw typeError(p, "string");
            case INT:
                if (v instanceof Long) {
                    return v;
                }
                throw typeError(p, "integer");
            case UINT32:
                // qapi/qobject-input-visitor.c: any number that fits uint64 is taken (a negative int64 wraps), then
                // range-checked; anything else is no uint64 at all.
                if (v instanceof Long l && l >= 0 && l <= 0xFFFF_FFFFL) {
                    return v;
                }
                if (v instanceof Long || v instanceof java.math.BigInteger) {
                    throw QmpException.of(BlockErrors.parameterExpects(p.name(), "uint32_t"));
                }
                throw QmpException.of(BlockErrors.parameterExpects(p.name(), "uint64"));
            case BOOL:
                if (v instanceof Boolean) {
                    return v;
                }
                throw typeError(p, "boolean");
            case ENUM:
                if (!(v instanceof String s)) {
                    throw typeError(p, "string");
                }
                if (!p.values().contains(s)) {
                    throw QmpException.of(BlockErrors.valueNotAccepted(p.name(), s));
                }
                return s;
            case ENUM_LIST:
                if (!(v instanceof List<?> l)) {
                    throw typeError(p, "array");
                }
                for (Object e : l) {
                    if (!(e instanceof String s)) {
                        throw typeError(p, "string");
                    }
                    if (!p.values().contains(s)) {
                        // QEMU 7.2 names list elements 'null' in this message
                        throw QmpException.of(BlockErrors.valueNotAccepted("null", s));
                    }
                }
                return l;
            default:
                throw new IllegalStateException();
        }
    }

    private static QmpException typeError(Param p, String expected) {
        return QmpException.of(BlockErrors.invalidParameterType(p.name(), expected));
    }

    /** Checked arguments. */
    public static final class Args {
        private final Map<String, Object> values;

        Args(Map<String, Object> values) {
            this.values = values;
        }

        public boolean has(String name) {
            return values.containsKey(name);
        }

        /** Every member as given (commands with the {@code **} schema). */
        public Map<String, Object> all() {
            return java.util.Collections.unmodifiableMap(values);
        }

        public String str(String name) {
            return (String) values.get(name);
        }

        public long integer(String name, long dflt) {
            Object v = values.get(name);
            return v == null ? dflt : (Long) v;
        }

        public boolean bool(String name, boolean dflt) {
            Object v = values.get(name);
            return v == null ? dflt : (Boolean) v;
        }
    }
}
