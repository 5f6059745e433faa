package io.livemon.block;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The options of one {@code -drive} (or {@code drive_add}) as QEMU's option syntax writes them:
 * {@code key=value,...}, a doubled comma standing for a literal one, a leading bare word meaning {@code file=}.
 */
public final class DriveOptions {
    private static final Set<String> KNOWN = Set.of("file", "if", "id", "format", "node-name", "readonly", "cache",
            "media", "index", "bus", "unit", "snapshot", "aio", "discard", "detect-zeroes", "werror", "rerror",
            "copy-on-read", "auto-read-only", "read-only", "backing");

    private final String text;
    private final Map<String, String> values;

    private DriveOptions(String text, Map<String, String> values) {
        this.text = text;
        this.values = values;
    }

    public static DriveOptions parse(String text) throws BlockException {
        Map<String, String> values = new LinkedHashMap<>();
        for (String part : splitOnCommas(text)) {
            if (part.isEmpty()) {
                continue;
            }
            int eq = part.indexOf('=');
            String key;
            String value;
            if (eq < 0) {
                if (values.isEmpty() && !part.isEmpty()) {
                    key = "file";
                    value = part;
                } else {
                    throw BlockErrors.invalidParameter(part);
                }
            } else {
                key = part.substring(0, eq);
                value = part.substring(eq + 1);
            }
            if (!KNOWN.contains(key) && !key.startsWith("backing.") && !key.startsWith("file.")) {
                String fmt = values.getOrDefault("format", "qcow2");
                throw BlockErrors.unsupportedOption(fmt, key);
            }
            values.put(key, value);
        }
        return new DriveOptions(text, values);
    }

    private static List<String> splitOnCommas(String s) {
        List<String> parts = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == ',') {
                if (i + 1 < s.length() && s.charAt(i + 1) == ',') {
                    cur.append(',');
                    i++;
                } else {
                    parts.add(cur.toString());
                    cur.setLength(0);
                }
            } else {
                cur.append(c);
            }
        }
        parts.add(cur.toString());
        return parts;
    }

    /** The text as given, for error messages ({@code -drive TEXT: message}). */
    public String text() {
        return text;
    }

    public String get(String key) {
        return values.get(key);
    }

    public String file() {
        return values.get("file");
    }

    public String interfaceType() {
        return values.getOrDefault("if", "ide");
    }

    public String id() {
        return values.get("id");
    }

    public String format() {
        return values.get("format");
    }

    public String nodeName() {
        return values.get("node-name");
    }

    public boolean readOnly() {
        String v = values.getOrDefault("readonly", values.getOrDefault("read-only", "off"));
        return v.equals("on") || v.equals("true") || v.equals("yes");
    }

    /**
     * {@code discard=ignore|off|unmap|on}: whether the guest's discards reach the image. QEMU's default for -drive is
     * ignore (a discard succeeds and changes nothing). Errors: "Invalid discard option" (blockdev.c).
     */
    public boolean discardUnmap() throws BlockException {
        String d = values.getOrDefault("discard", "ignore");
        return switch (d) {
            case "ignore", "off" -> false;
            case "unmap", "on" -> true;
            default -> throw BlockErrors.invalidDiscard();
        };
    }

    /**
     * {@code detect-zeroes=off|on|unmap}: whether a guest write of zeroes becomes a zero write (unmap: one that may
     * free the clusters). Errors: "invalid parameter value: X" (QEMU's -drive parser).
     */
    public String detectZeroes() throws BlockException {
        String z = values.getOrDefault("detect-zeroes", "off");
        if (!z.equals("off") && !z.equals("on") && !z.equals("unmap")) {
            throw BlockErrors.invalidParameterValue(z);
        }
        return z;
    }

    /**
     * Whether the command line chooses the backing itself instead of the image's header: {@code backing=} (none, or
     * a node name) or {@code backing.file.filename=FILE}. QEMU then shows the drive's image as a {@code json:}
     * pseudo-filename unless the choice names what the header names.
     */
    public boolean backingChosen() {
        return values.containsKey("backing") || values.containsKey("backing.file.filename");
    }

    /** {@code backing=NAME}: a node to use as backing ("" = none), or null when not given. */
    public String backingReference() {
        return values.get("backing");
    }

    /** {@code backing.file.filename}: the file to open as backing instead of the header's, or null. */
    public String backingFileOverride() {
        return values.get("backing.file.filename");
    }

    /**
     * Whether any option reaches the backing of the image at {@code depth} (0 = the drive's image): a key under
     * {@code backing.} repeated depth + 1 times, such as {@code backing.node-name} for depth 0. QEMU 7.2 then opens
     * that backing from options rather than implicitly from the header (block.c bdrv_open_backing_file), so the
     * image's auto_backing_file stays the header's string.
     */
    public boolean backingOptionsAt(int depth) {
        String prefix = "backing.".repeat(depth + 1);
        return values.keySet().stream().anyMatch(k -> k.startsWith(prefix));
    }

    /** {@code backing.node-name} is depth 1, {@code backing.backing.node-name} depth 2, ... */
    public String backingNodeName(int depth) {
        return values.get("backing.".repeat(depth) + "node-name");
    }

    /** QEMU's {@code info block} cache words for {@code cache=MODE}. */
    public String cacheModeWords() throws BlockException {
        String c = values.getOrDefault("cache", "writeback");
        return switch (c) {
            case "writeback" -> "writeback";
            case "writethrough" -> "writethrough";
            case "none" -> "writeback, direct";
            case "directsync" -> "writethrough, direct";
            case "unsafe" -> "writeback, ignore flushes";
            default -> throw BlockErrors.invalidCache();
        };
    }
}
