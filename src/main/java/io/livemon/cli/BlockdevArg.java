package io.livemon.cli;

import io.livemon.block.BlockErrors;
import io.livemon.block.BlockException;
import io.livemon.block.BlockdevOptions;
import io.livemon.qmp.Json;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A {@code -blockdev} argument: JSON when it starts with a brace (as QEMU decides), else dotted key=value. */
public final class BlockdevArg {
    private BlockdevArg() {
    }

    @SuppressWarnings("unchecked")
    public static BlockdevOptions parse(String text) throws BlockException {
        if (!text.startsWith("{")) {
            return BlockdevOptions.fromDotted(text);
        }
        Object v;
        try {
            v = Json.parse(text);
        } catch (IllegalArgumentException e) {
            throw BlockErrors.invalidJson(e.getMessage());
        }
        return BlockdevOptions.fromMap((Map<String, Object>) plain(v));
    }

    /** JSON values with {@link Json#NULL} turned into Java null (what BlockdevOptions takes for JSON null). */
    @SuppressWarnings("unchecked")
    static Object plain(Object v) {
        if (v == Json.NULL) {
            return null;
        }
        if (v instanceof Map<?, ?> m) {
            Map<String, Object> r = new LinkedHashMap<>();
            ((Map<String, Object>) m).forEach((k, x) -> r.put(k, plain(x)));
            return r;
        }
        if (v instanceof List<?> l) {
            List<Object> r = new ArrayList<>();
            l.forEach(x -> r.add(plain(x)));
            return r;
        }
        return v;
    }
}
