package io.livemon.monitor;

import java.util.ArrayList;
import java.util.List;

/**
 * A parsed QEMU args_type string such as {@code device:B,speed:o?,base:s?} or {@code force:-f,device:B}.
 *
 * <p>Types: {@code B} block device name, {@code s} string, {@code F} file name (word or "quoted"),
 * {@code S} rest of line, {@code O} option string (kept as a string), {@code o} size (default unit MiB),
 * {@code i}/{@code l} 32/64-bit integer expressions, {@code M} integer × MiB, {@code b} on/off,
 * {@code -x} a flag. A trailing {@code ?} makes an argument optional.
 *
 * <p>livemon extension: {@link #withSizeOrString(String)} marks an optional size argument that is skipped
 * (left absent, nothing consumed) when its text does not start like a number, so that the following argument
 * takes the word. Used for {@code block_stream DEVICE BASE}.
 */
public final class ArgSpec {

    /** One argument. {@code flag} is the option letter for type '-', else 0. */
    public record Param(String name, char type, char flag, boolean optional, int typeEnd) {
    }

    private final String raw;
    private final List<Param> params;
    private final String sizeOrString;

    private ArgSpec(String raw, List<Param> params, String sizeOrString) {
        this.raw = raw;
        this.params = params;
        this.sizeOrString = sizeOrString;
    }

    /** Parses an args_type string ("" or null: no arguments). */
    public static ArgSpec parse(String argsType) {
        String raw = argsType == null ? "" : argsType;
        List<Param> params = new ArrayList<>();
        int pos = 0;
        while (pos < raw.length()) {
            if (raw.charAt(pos) == ',') {
                pos++;
            }
            int colon = raw.indexOf(':', pos);
            if (colon < 0) {
                break;
            }
            String name = raw.substring(pos, colon);
            int p = colon + 1;
            char type = p < raw.length() ? raw.charAt(p) : '\0';
            p++;
            char flag = 0;
            if (type == '-') {
                flag = p < raw.length() ? raw.charAt(p) : '\0';
                p++;
            }
            boolean optional = false;
            if (p < raw.length() && raw.charAt(p) == '?') {
                optional = true;
                p++;
            }
            params.add(new Param(name, type, flag, optional, Math.min(p, raw.length())));
            int comma = raw.indexOf(',', p);
            pos = comma < 0 ? raw.length() : comma;
        }
        return new ArgSpec(raw, List.copyOf(params), null);
    }

    /**
     * livemon extension: the optional size argument {@code sizeParam} is left absent when its text starts with
     * anything but a digit, '+', '-', '.' or '"' (those stay sizes and fail with {@code invalid size} when
     * malformed); the word then goes to the next argument. {@code block_stream virtio0 file-A.img} thus means
     * {@code block_stream virtio0 0 file-A.img}.
     */
    public ArgSpec withSizeOrString(String sizeParam) {
        return new ArgSpec(raw, params, sizeParam);
    }

    public List<Param> params() {
        return params;
    }

    /** The args_type string as given. */
    public String raw() {
        return raw;
    }

    /** The size argument marked with {@link #withSizeOrString(String)}, or null. */
    public String sizeOrStringParam() {
        return sizeOrString;
    }

    /** QEMU's is_valid_option: does "-c" occur anywhere in the args_type after this parameter? */
    boolean flagOccursAfter(Param p, char c) {
        String rest = raw.substring(p.typeEnd());
        return c == '\0' ? rest.indexOf('-') >= 0 : rest.contains("-" + c);
    }

    @Override
    public String toString() {
        return raw;
    }
}
