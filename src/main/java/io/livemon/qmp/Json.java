package io.livemon.qmp;

import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/**
 * QMP's JSON values and QEMU's way of writing them. Values are plain Java objects: {@code Map<String, Object>}
 * (insertion-ordered), {@code List<Object>}, {@code String}, {@code Long}, {@code Double}, {@code Boolean} and
 * {@link #NULL}.
 *
 * <p>QEMU keeps JSON objects in a hash table of 512 buckets and writes them bucket by bucket, the member added last
 * first within a bucket; the odd member order on the wire ({@code {"return": ..., "id": ...}} but
 * {@code {"id": ..., "error": ...}}) is that order. {@link #write} reproduces it, so builders simply add members in
 * the QAPI schema's order. Strings are written with every character outside printable ASCII as {@code \\uXXXX}.
 */
public final class Json {
    /** JSON {@code null} (distinct from an absent member). */
    public static final Object NULL = new Object() {
        @Override
        public String toString() {
            return "null";
        }
    };

    private static final int BUCKETS = 512;

    private Json() {
    }

    /** The bucket QEMU's QDict puts {@code key} in. */
    static int bucket(String key) {
        byte[] b = key.getBytes(StandardCharsets.UTF_8);
        int value = 0x238F13AF * b.length;
        for (int i = 0; i < b.length; i++) {
            value += (b[i] & 0xff) << (i * 5 % 24);
        }
        int h = 1103515243 * value + 12345;
        return Integer.remainderUnsigned(h, BUCKETS);
    }

    public static String write(Object v) {
        StringBuilder sb = new StringBuilder();
        write(v, sb);
        return sb.toString();
    }

    @SuppressWarnings("unchecked")
    public static void write(Object v, StringBuilder sb) {
        if (v == null || v == NULL) {
            sb.append("null");
        } else if (v instanceof String s) {
            writeString(s, sb);
        } else if (v instanceof Boolean || v instanceof Long || v instanceof Integer || v instanceof Short
                || v instanceof java.math.BigInteger) {
            sb.append(v);
        } else if (v instanceof Double d) {
            sb.append(formatDouble(d));
        } else if (v instanceof Map<?, ?> m) {
            writeObject((Map<String, Object>) m, sb);
        } else if (v instanceof List<?> l) {
            sb.append('[');
            for (int i = 0; i < l.size(); i++) {
                if (i > 0) {
                    sb.append(", ");
                }
                write(l.get(i), sb);
            }
            sb.append(']');
        } else {
            throw new IllegalArgumentException("not a JSON value: " + v.getClass());
        }
    }

    private static void writeObject(Map<String, Object> m, StringBuilder sb) {
        List<Map.Entry<String, Object>> entries = new ArrayList<>(m.entrySet());
        List<int[]> order = new ArrayList<>();
        for (int i = 0; i < entries.size(); i++) {
            order.add(new int[] {bucket(entries.get(i).getKey()), i});
        }
        // bucket ascending; within a bucket the member added last comes first
        order.sort(Comparator.<int[]>comparingInt(a -> a[0]).thenComparing(a -> -a[1]));
        sb.append('{');
        boolean first = true;
        for (int[] o : order) {
            if (!first) {
                sb.append(", ");
            }
            first = false;
            Map.Entry<String, Object> e = entries.get(o[1]);
            writeString(e.getKey(), sb);
            sb.append(": ");
            write(e.getValue(), sb);
        }
        sb.append('}');
    }

    static void writeString(String s, StringBuilder sb) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20 || c >= 0x7f) {
                        sb.append(String.format("\\u%04X", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }

    /** C's {@code %.17g}, which QEMU uses for numbers with a fraction or exponent. */
    static String formatDouble(double d) {
        if (Double.isNaN(d) || Double.isInfinite(d)) {
            return "null";
        }
        if (d == 0) {
            return (1 / d < 0) ? "-0" : "0";
        }
        BigDecimal bd = new BigDecimal(d).round(new MathContext(17));
        int exp = bd.precision() - bd.scale() - 1;
        BigDecimal stripped = bd.stripTrailingZeros();
        if (exp < -4 || exp >= 17) {
            String digits = stripped.unscaledValue().abs().toString();
            StringBuilder sb = new StringBuilder();
            if (d < 0) {
                sb.append('-');
            }
            sb.append(digits.charAt(0));
            if (digits.length() > 1) {
                sb.append('.').append(digits, 1, digits.length());
            }
            sb.append('e').append(exp < 0 ? '-' : '+');
            int ae = Math.abs(exp);
            if (ae < 10) {
                sb.append('0');
            }
            sb.append(ae);
            return sb.toString();
        }
        return stripped.toPlainString();
    }

    /**
     * Parses one complete JSON value as QMP's input does (single-quoted strings accepted); JSON null becomes
     * {@link #NULL}. Throws IllegalArgumentException with QEMU's text ({@code JSON parse error, premature EOI}).
     */
    public static Object parse(String text) {
        List<Object> values = new ArrayList<>();
        List<String> errors = new ArrayList<>();
        JsonStreamParser p = new JsonStreamParser(new JsonStreamParser.Listener() {
            @Override
            public void value(Object value) {
                values.add(value);
            }

            @Override
            public void error(String desc) {
                errors.add(desc);
            }
        }, Integer.MAX_VALUE);
        for (int i = 0; i < text.length() && errors.isEmpty() && values.isEmpty(); i++) {
            p.feed(text.charAt(i));
        }
        if (!errors.isEmpty()) {
            throw new IllegalArgumentException(errors.get(0));
        }
        if (values.isEmpty()) {
            throw new IllegalArgumentException("JSON parse error, premature EOI");
        }
        return values.get(0);
    }

    /** An ordered object builder: {@code Json.obj("a", 1, "b", 2)}. Null values are left out. */
    public static Map<String, Object> obj(Object... kv) {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            if (kv[i + 1] != null) {
                m.put((String) kv[i], kv[i + 1]);
            }
        }
        return m;
    }
}
