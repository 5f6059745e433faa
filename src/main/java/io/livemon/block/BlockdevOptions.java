package io.livemon.block;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * One {@code -blockdev} (or QMP {@code blockdev-add}) node description, checked as QEMU's QAPI visitor checks
 * BlockdevOptions, with its error texts. livemon knows the drivers {@code qcow2} and {@code raw} (format nodes),
 * {@code file} and {@code blkdebug} (protocol nodes under them). A child ({@code file}, {@code image}) is an inline
 * object; {@code backing} is a node name, JSON null (no backing) or absent (the backing file the image names).
 *
 * <p>Values come from JSON ({@code String}, {@code Boolean}, {@code Long}, {@code Map}, {@code List}, and
 * {@code null} for JSON null) or from QEMU's dotted {@code key=value} syntax ({@link #parseDotted}).
 */
public final class BlockdevOptions {
    private static final Pattern NODE_NAME = Pattern.compile("[A-Za-z][A-Za-z0-9_.\\-]*");

    /** Whether {@code name} is a valid node name (a letter, then letters, digits, '-', '.', '_'). */
    static boolean isValidNodeName(String name) {
        return NODE_NAME.matcher(name).matches();
    }
    private static final Set<String> BASE = Set.of("driver", "node-name", "discard", "cache", "read-only",
            "auto-read-only", "force-share", "detect-zeroes");
    private static final Map<String, Set<String>> DRIVER_KEYS = Map.of(
            "qcow2", Set.of("file", "backing", "lazy-refcounts", "pass-discard-request", "pass-discard-snapshot",
                    "pass-discard-other", "overlap-check", "cache-size", "l2-cache-size", "l2-cache-entry-size",
                    "refcount-cache-size", "cache-clean-interval", "encrypt", "data-file"),
            "raw", Set.of("file", "offset", "size"),
            "file", Set.of("filename", "pr-manager", "locking", "aio", "aio-max-batch", "drop-cache",
                    "x-check-cache-dropped"),
            "blkdebug", Set.of("image", "config", "align", "max-transfer", "opt-write-zero", "max-write-zero",
                    "opt-discard", "max-discard", "inject-error", "set-state", "take-child-perms",
                    "unshare-child-perms"),
            "null-co", Set.of("size", "latency-ns", "read-zeroes"));
    /** QEMU drivers livemon does not implement (refused with a livemon message rather than QEMU's enum error). */
    private static final Set<String> OTHER_QEMU_DRIVERS = Set.of("blkreplay", "blkverify", "bochs", "cloop",
            "compress", "copy-before-write", "copy-on-read", "dmg", "snapshot-access", "ftp", "ftps", "gluster",
            "host_cdrom", "host_device", "http", "https", "io_uring", "iscsi", "luks", "nbd", "nfs", "null-aio",
            "nvme", "parallels", "preallocate", "qcow", "qed", "quorum", "rbd", "replication", "ssh",
            "throttle", "vdi", "vhdx", "vmdk", "vpc", "vvfat", "blklogwrites", "virtio-blk-vhost-vdpa");

    private final String driver;
    private final String nodeName;
    private final boolean readOnly;
    /** Format nodes: the inline protocol child. */
    private final BlockdevOptions file;
    /** qcow2: whether {@code backing} was given at all, and the node name it names (null = JSON null). */
    private final boolean backingGiven;
    private final String backing;
    /** file: the host file. */
    private final String filename;
    /** blkdebug: the config file (may be null) and the inline image child. */
    private final String config;
    private final BlockdevOptions image;
    /** qcow2: a backing node given inline (opened with its parent, closed with it). */
    private BlockdevOptions backingInline;
    /** Format nodes: the protocol child named by reference instead of inline; blkdebug: its image child's name. */
    private String fileRef;
    private String imageRef;
    /** blkdebug: inline rules ({@code inject-error}, {@code set-state}), as the config file's groups read. */
    private List<Map<String, String>> injectErrors = List.of();
    private List<Map<String, String>> setStates = List.of();
    /** null-co: size in bytes and read-zeroes. */
    private long nullSize = io.livemon.image.NullImage.DEFAULT_SIZE;
    private boolean readZeroes;
    /** {@code discard}: whether guest discards reach the image (QEMU's default for -blockdev: ignore). */
    private boolean discardUnmap;
    /** {@code detect-zeroes}: off, on or unmap. */
    private String detectZeroes = "off";

    private BlockdevOptions(String driver, String nodeName, boolean readOnly, BlockdevOptions file,
                            boolean backingGiven, String backing, String filename, String config,
                            BlockdevOptions image) {
        this.driver = driver;
        this.nodeName = nodeName;
        this.readOnly = readOnly;
        this.file = file;
        this.backingGiven = backingGiven;
        this.backing = backing;
        this.filename = filename;
        this.config = config;
        this.image = image;
    }

    /** A root node from a parsed JSON object (or a dotted option string turned into one). */
    public static BlockdevOptions fromMap(Map<String, Object> m) throws BlockException {
        return root(parse(m, "", false));
    }

    /** A root node from QEMU's dotted syntax (see {@link #parseDotted}). */
    public static BlockdevOptions fromDotted(String text) throws BlockException {
        return root(parse(parseDotted(text), "", true));
    }

    private static BlockdevOptions root(BlockdevOptions o) throws BlockException {
        if (o.nodeName == null) {
            throw BlockErrors.rootNodeNameRequired();
        }
        return o;
    }

    /**
     * QEMU's dotted syntax ({@code driver=qcow2,node-name=x,file.driver=file,file.filename=a.img}), ",," standing
     * for a comma; values are strings as QEMU's keyval parser gives them ({@code read-only=on}).
     */
    static Map<String, Object> parseDotted(String text) throws BlockException {
        Map<String, Object> root = new LinkedHashMap<>();
        StringBuilder cur = new StringBuilder();
        List<String> parts = new java.util.ArrayList<>();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == ',' && i + 1 < text.length() && text.charAt(i + 1) == ',') {
                cur.append(',');
                i++;
            } else if (c == ',') {
                parts.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(c);
            }
        }
        parts.add(cur.toString());
        for (int n = 0; n < parts.size(); n++) {
            String p = parts.get(n);
            if (p.isEmpty()) {
                continue;
            }
            int eq = p.indexOf('=');
            if (eq < 0 && n == 0) {
                root.put("driver", p); // QEMU's implied first key
                continue;
            }
            if (eq < 0) {
                throw BlockErrors.expectedEquals(p);
            }
            String[] path = p.substring(0, eq).split("\\.", -1);
            Map<String, Object> m = root;
            for (int i = 0; i < path.length - 1; i++) {
                Object sub = m.get(path[i]);
                if (!(sub instanceof Map)) {
                    sub = new LinkedHashMap<String, Object>();
                    m.put(path[i], sub);
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> next = (Map<String, Object>) sub;
                m = next;
            }
            m.put(path[path.length - 1], p.substring(eq + 1));
        }
        return root;
    }

    private static BlockdevOptions parse(Map<String, Object> m, String prefix, boolean dotted) throws BlockException {
        Object drv = m.get("driver");
        if (drv == null) {
            throw BlockErrors.missingParameter(prefix + "driver");
        }
        String driver = str(m, "driver", prefix);
        Set<String> own = DRIVER_KEYS.get(driver);
        if (own == null) {
            if (OTHER_QEMU_DRIVERS.contains(driver)) {
                throw BlockErrors.driverNotSupported(driver);
            }
            throw BlockErrors.valueNotAccepted(prefix + "driver", driver);
        }
        for (String k : m.keySet()) {
            if (!BASE.contains(k) && !own.contains(k)) {
                throw BlockErrors.unexpectedParameter(prefix + k);
            }
        }
        String nodeName = m.containsKey("node-name") ? str(m, "node-name", prefix) : null;
        if (nodeName != null && !NODE_NAME.matcher(nodeName).matches()) {
            throw BlockErrors.invalidNodeName(nodeName);
        }
        boolean readOnly = bool(m, "read-only", prefix, dotted);
        BlockdevOptions o = parseDriver(m, prefix, dotted, driver, nodeName, readOnly);
        // QAPI enums BlockdevDiscardOptions and BlockdevDetectZeroesOptions; the pairing rule of block.c
        if (m.containsKey("discard")) {
            String d = str(m, "discard", prefix);
            if (!d.equals("ignore") && !d.equals("unmap")) {
                throw BlockErrors.valueNotAccepted(prefix + "discard", d);
            }
            o.discardUnmap = d.equals("unmap");
        }
        if (m.containsKey("detect-zeroes")) {
            String z = str(m, "detect-zeroes", prefix);
            if (!z.equals("off") && !z.equals("on") && !z.equals("unmap")) {
                throw BlockErrors.valueNotAccepted(prefix + "detect-zeroes", z);
            }
            if (z.equals("unmap") && !o.discardUnmap) {
                throw BlockErrors.detectZeroesUnmapWithoutDiscard();
            }
            o.detectZeroes = z;
        }
        return o;
    }

    private static BlockdevOptions parseDriver(Map<String, Object> m, String prefix, boolean dotted, String driver,
                                               String nodeName, boolean readOnly) throws BlockException {
        switch (driver) {
            case "qcow2", "raw" -> {
                String fileRef = reference(m, "file");
                BlockdevOptions file = fileRef != null ? null : child(m, "file", prefix, dotted);
                boolean backingGiven = m.containsKey("backing");
                String backing = null;
                BlockdevOptions backingInline = null;
                if (backingGiven && m.get("backing") != null) {
                    Object b = m.get("backing");
                    if (b instanceof String s) {
                        backing = s;
                    } else if (b instanceof Map && driver.equals("qcow2")) {
                        backingInline = child(m, "backing", prefix, dotted);
                    } else {
                        throw BlockErrors.invalidParameterType(prefix + "backing", "BlockdevRefOrNull");
                    }
                }
                BlockdevOptions o = new BlockdevOptions(driver, nodeName, readOnly, file, backingGiven, backing, null,
                        null, null);
                o.fileRef = fileRef;
                o.backingInline = backingInline;
                return o;
            }
            case "null-co" -> {
                BlockdevOptions o = new BlockdevOptions(driver, nodeName, readOnly, null, false, null, null, null,
                        null);
                if (m.containsKey("size")) {
                    o.nullSize = number(m, "size", prefix, dotted);
                    if (o.nullSize < 0) {
                        // QEMU 7.2 aborts on a negative size (newcomer trial); refused here
                        throw BlockErrors.nonNegativeExpected(prefix + "size");
                    }
                }
                o.readZeroes = bool(m, "read-zeroes", prefix, dotted);
                return o;
            }
            case "file" -> {
                if (!m.containsKey("filename")) {
                    throw BlockErrors.missingParameter(prefix + "filename");
                }
                return new BlockdevOptions(driver, nodeName, readOnly, null, false, null,
                        str(m, "filename", prefix), null, null);
            }
            default -> { // blkdebug
                String imageRef = reference(m, "image");
                BlockdevOptions image = imageRef != null ? null : child(m, "image", prefix, dotted);
                if (image != null && !image.driver.equals("file")) {
                    throw BlockErrors.blkdebugNeedsFile();
                }
                String config = m.containsKey("config") ? str(m, "config", prefix) : null;
                BlockdevOptions o = new BlockdevOptions(driver, nodeName, readOnly, null, false, null, null, config,
                        image);
                o.imageRef = imageRef;
                o.injectErrors = ruleGroups(m, "inject-error", prefix);
                o.setStates = ruleGroups(m, "set-state", prefix);
                return o;
            }
        }
    }

    /** A child given as a node name (QAPI BlockdevRef's string branch), or null when it is inline or absent. */
    private static String reference(Map<String, Object> m, String key) {
        return m.get(key) instanceof String s ? s : null;
    }

    /**
     * blkdebug's inline rule lists (BlkdebugInjectErrorOptions, BlkdebugSetStateOptions) as the key/value groups a
     * config file gives, so that one reader turns both into rules.
     */
    private static List<Map<String, String>> ruleGroups(Map<String, Object> m, String key, String prefix)
            throws BlockException {
        Object v = m.get(key);
        if (v == null) {
            return List.of();
        }
        java.util.Collection<?> items;
        if (v instanceof List<?> l) {
            items = l;
        } else if (v instanceof Map<?, ?> dotted) {
            items = new java.util.TreeMap<>(dotted).values(); // dotted syntax: inject-error.0.event=...
        } else {
            throw BlockErrors.invalidParameterType(prefix + key, "array");
        }
        List<Map<String, String>> groups = new java.util.ArrayList<>();
        for (Object item : items) {
            if (!(item instanceof Map<?, ?> r)) {
                throw BlockErrors.invalidParameterType(prefix + key, "object");
            }
            Map<String, String> g = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : r.entrySet()) {
                g.put(String.valueOf(e.getKey()), String.valueOf(e.getValue()));
            }
            groups.add(g);
        }
        return groups;
    }

    private static long number(Map<String, Object> m, String key, String prefix, boolean dotted)
            throws BlockException {
        Object v = m.get(key);
        if (v instanceof Long l) {
            return l;
        }
        if (v instanceof Number n && n.doubleValue() == Math.rint(n.doubleValue())) {
            return n.longValue();
        }
        if (v instanceof String s && dotted) {
            try {
                return Long.parseLong(s);
            } catch (NumberFormatException e) {
                // falls through to QEMU's type error
            }
        }
        throw BlockErrors.invalidParameterType(prefix + key, "integer");
    }

    @SuppressWarnings("unchecked")
    private static BlockdevOptions child(Map<String, Object> m, String key, String prefix, boolean dotted) throws BlockException {
        Object v = m.get(key);
        if (v == null) {
            throw BlockErrors.missingParameter(prefix + key);
        }
        if (v instanceof String s) {
            throw BlockErrors.nodeReferenceNotSupported(s, prefix + key);
        }
        if (!(v instanceof Map)) {
            throw BlockErrors.invalidParameterType(prefix + key, "BlockdevRef");
        }
        return parse((Map<String, Object>) v, prefix + key + ".", dotted);
    }

    private static String str(Map<String, Object> m, String key, String prefix) throws BlockException {
        Object v = m.get(key);
        if (!(v instanceof String s)) {
            throw BlockErrors.invalidParameterType(prefix + key, "string");
        }
        return s;
    }

    private static boolean bool(Map<String, Object> m, String key, String prefix, boolean dotted) throws BlockException {
        Object v = m.get(key);
        if (v == null) {
            return false;
        }
        if (v instanceof Boolean b) {
            return b;
        }
        if (v instanceof String s && dotted) {
            // dotted syntax: keyval strings
            switch (s) {
                case "on", "true", "yes" -> {
                    return true;
                }
                case "off", "false", "no" -> {
                    return false;
                }
                default -> {
                }
            }
        }
        throw BlockErrors.invalidParameterType(prefix + key, "boolean");
    }

    public String driver() {
        return driver;
    }

    public String nodeName() {
        return nodeName;
    }

    public boolean readOnly() {
        return readOnly;
    }

    /** The inline protocol child of a format node. */
    public BlockdevOptions file() {
        return file;
    }

    public boolean backingGiven() {
        return backingGiven;
    }

    /** The backing node's name; null with {@link #backingGiven()} means JSON null (no backing). */
    public String backing() {
        return backing;
    }

    public String filename() {
        return filename;
    }

    /** {@code discard=unmap}: guest discards reach the image; otherwise they are ignored, as QEMU's default. */
    public boolean discardUnmap() {
        return discardUnmap;
    }

    /** {@code detect-zeroes}: "off", "on" or "unmap". */
    public String detectZeroes() {
        return detectZeroes;
    }

    /** qcow2: the backing node's options when given inline (null when named, null or absent). */
    public BlockdevOptions backingInline() {
        return backingInline;
    }

    /** A format node's protocol child named by reference (null when inline). */
    public String fileRef() {
        return fileRef;
    }

    /** blkdebug: the image child named by reference (null when inline). */
    public String imageRef() {
        return imageRef;
    }

    /** blkdebug's inline {@code inject-error} rules, as key/value groups (empty when none). */
    public List<Map<String, String>> injectErrors() {
        return injectErrors;
    }

    /** blkdebug's inline {@code set-state} rules, as key/value groups (empty when none). */
    public List<Map<String, String>> setStates() {
        return setStates;
    }

    /** null-co: size in bytes (1 GiB by default). */
    public long nullSize() {
        return nullSize;
    }

    /** null-co: {@code read-zeroes}. */
    public boolean readZeroes() {
        return readZeroes;
    }

    public String config() {
        return config;
    }

    public BlockdevOptions image() {
        return image;
    }
}
