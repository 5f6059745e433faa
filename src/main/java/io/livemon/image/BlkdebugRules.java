package io.livemon.image;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * QEMU's blkdebug error-injection rules, read from a blkdebug config file ({@code [inject-error]} and
 * {@code [set-state]} groups of {@code key = "value"} lines) and applied to the protocol-level requests of one image
 * file (see {@link BlkdebugChannel}).
 *
 * <p>As in QEMU, a rule is armed when its event happens and then fails every request whose byte range contains the
 * first byte of its {@code sector} (sector -1: every request, flushes included) with its {@code errno}; {@code once}
 * removes the rule after its first failure; {@code iotype} restricts the kinds of request it fails (default: all).
 * When an event with inject-error rules happens, the armed set is replaced by that event's rules, as QEMU's
 * {@code process_rule} does. livemon does not see QEMU's format-driver events, so it approximates them by the
 * request that follows them: {@code read_aio} happens at every read of the file, {@code write_aio} at every write,
 * {@code flush_to_disk}/{@code flush_to_os} at every flush. Other events are refused (livemon cannot raise them).
 * Requests are checked with their range widened to 512-byte sectors, as QEMU's block layer aligns them before
 * blkdebug sees them, so a request overlapping the configured sector fails.
 */
public final class BlkdebugRules {
    /** The request kinds blkdebug tells apart (QEMU's BlkdebugIOType, the ones livemon issues). */
    public enum IoType { READ, WRITE, FLUSH }

    /** QEMU 7.2's BlkdebugEvent names (for its "invalid parameter value" check). */
    private static final Set<String> QEMU_EVENTS = Set.of("l1_update", "l1_grow.alloc_table",
            "l1_grow.write_table", "l1_grow.activate_table", "l2_load", "l2_update", "l2_update_compressed",
            "l2_alloc.cow_read", "l2_alloc.write", "read_aio", "read_backing_aio", "read_compressed", "write_aio",
            "write_compressed", "vmstate_load", "vmstate_save", "cow_read", "cow_write", "reftable_load",
            "reftable_grow", "reftable_update", "refblock_load", "refblock_update", "refblock_update_part",
            "refblock_alloc", "refblock_alloc.hookup", "refblock_alloc.write", "refblock_alloc.write_blocks",
            "refblock_alloc.write_table", "refblock_alloc.switch_table", "cluster_alloc", "cluster_alloc_bytes",
            "cluster_free", "flush_to_os", "flush_to_disk", "pwritev_rmw.head", "pwritev_rmw.after_head",
            "pwritev_rmw.tail", "pwritev_rmw.after_tail", "pwritev", "pwritev_zero", "pwritev_done",
            "empty_image_prepare", "l1_shrink.write_table", "l1_shrink.free_l2_clusters", "cor_write",
            "cluster_alloc_space", "none");
    private static final Set<String> INJECT_KEYS = Set.of("event", "state", "errno", "sector", "once", "immediately",
            "iotype");
    private static final Set<String> SET_STATE_KEYS = Set.of("event", "state", "new_state");
    private static final int EIO = 5;

    /** One {@code [inject-error]} rule. */
    public record Rule(String event, int state, int errno, long sector, boolean once, boolean immediately,
                       Set<IoType> ioTypes) {
        /** The byte QEMU checks: {@code sector * 512}, or -1 for any request. */
        public long offset() {
            return sector < 0 ? -1 : sector * 512;
        }

        boolean matches(IoType type, long offset, long len) {
            if (!ioTypes.contains(type)) {
                return false;
            }
            if (sector < 0) {
                return true;
            }
            if (len <= 0) {
                return false;
            }
            long start = offset & ~511L;
            long end = (offset + len + 511) & ~511L;
            return offset() >= start && offset() < end;
        }
    }

    /** One {@code [set-state]} rule. */
    public record SetState(String event, int state, int newState) {
    }

    private final List<Rule> rules;
    private final List<SetState> setStates;
    private final List<Rule> armed = new ArrayList<>();
    private int state = 1;

    /** A breakpoint qemu-io's {@code break EVENT TAG} set: suspends the next request that raises the event. */
    private record Breakpoint(String event, String tag) {
    }

    /** A request held at a breakpoint until {@code resume TAG} or {@code remove_break TAG} lets it go. */
    private static final class Suspended {
        final String tag;
        boolean resumed;

        Suspended(String tag) {
            this.tag = tag;
        }
    }

    /** Breakpoints not yet hit, in the order they were set. Guarded by this object's monitor, as all state here. */
    private final List<Breakpoint> breakpoints = new ArrayList<>();
    /** Requests waiting at a breakpoint (each one's thread waits on this object's monitor). */
    private final List<Suspended> suspended = new ArrayList<>();
    /** Set when the image closes: suspended requests go on and no request suspends any more. */
    private boolean released;

    private BlkdebugRules(List<Rule> rules, List<SetState> setStates) {
        this.rules = new ArrayList<>(rules);
        this.setStates = List.copyOf(setStates);
    }

    /** No rules: a blkdebug node that passes every request through. */
    public static BlkdebugRules none() {
        return new BlkdebugRules(List.of(), List.of());
    }

    /** Reads a config file (relative to {@code cwd}) with QEMU's errors. */
    public static BlkdebugRules read(Path cwd, String configFile) throws ImageException {
        String text;
        try {
            text = Files.readString(cwd.resolve(configFile), StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new ImageException("Could not read blkdebug config file: No such file or directory");
        } catch (java.nio.file.AccessDeniedException e) {
            throw new ImageException("Could not read blkdebug config file: Permission denied");
        } catch (IOException e) {
            throw new ImageException("Could not read blkdebug config file: " + e.getMessage(), e);
        }
        return parse(text);
    }

    /** Parses config text as QEMU's qemu_config_parse and blkdebug's add_rule do, with their error texts. */
    public static BlkdebugRules parse(String text) throws ImageException {
        List<Map<String, String>> injects = new ArrayList<>();
        List<Map<String, String>> sets = new ArrayList<>();
        Map<String, String> group = null;
        for (String raw : text.split("\n", -1)) {
            String line = raw.endsWith("\r") ? raw.substring(0, raw.length() - 1) : raw;
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            if (line.startsWith("[")) {
                int close = line.indexOf(']');
                String name = close < 0 ? line.substring(1) : line.substring(1, close);
                int sp = name.indexOf(' ');
                if (sp >= 0) {
                    name = name.substring(0, sp); // [group "id"]: the id is not used by blkdebug
                }
                if (close < 0 && sp < 0 || name.isEmpty()) {
                    throw new ImageException("parse error");
                }
                group = new LinkedHashMap<>();
                switch (name) {
                    case "inject-error" -> injects.add(group);
                    case "set-state" -> sets.add(group);
                    default -> throw new ImageException("There is no option group '" + name + "'");
                }
                continue;
            }
            String t = line.strip();
            if (t.isEmpty()) {
                throw new ImageException("parse error");
            }
            int ws = 0;
            while (ws < t.length() && !Character.isWhitespace(t.charAt(ws))) {
                ws++;
            }
            String key = t.substring(0, ws);
            String rest = t.substring(ws).strip();
            String value = "";
            if (rest.startsWith("=")) {
                String v = rest.substring(1).strip();
                if (v.startsWith("\"")) {
                    int q = v.indexOf('"', 1);
                    value = q < 0 ? v.substring(1) : v.substring(1, q);
                }
            }
            if (group == null) {
                throw new ImageException("no group defined");
            }
            group.put(key, value);
        }
        return fromGroups(injects, sets);
    }

    /**
     * Rules from {@code [inject-error]} and {@code [set-state]} groups (a config file's, or blockdev-add's inline
     * {@code inject-error} and {@code set-state} lists as key/value pairs), with blkdebug's add_rule errors.
     */
    public static BlkdebugRules fromGroups(List<Map<String, String>> injects, List<Map<String, String>> sets)
            throws ImageException {
        List<Rule> rules = new ArrayList<>();
        for (Map<String, String> g : injects) {
            checkKeys(g, INJECT_KEYS);
            String event = event(g);
            Set<IoType> types = g.containsKey("iotype") ? Set.of(ioType(g.get("iotype")))
                    : Set.of(IoType.READ, IoType.WRITE, IoType.FLUSH);
            rules.add(new Rule(event, (int) number(g, "state", 0), (int) number(g, "errno", EIO),
                    number(g, "sector", -1), bool(g, "once"), bool(g, "immediately"), types));
        }
        List<SetState> setStates = new ArrayList<>();
        for (Map<String, String> g : sets) {
            checkKeys(g, SET_STATE_KEYS);
            setStates.add(new SetState(event(g), (int) number(g, "state", 0), (int) number(g, "new_state", 0)));
        }
        return new BlkdebugRules(rules, setStates);
    }

    private static void checkKeys(Map<String, String> g, Set<String> known) throws ImageException {
        for (String k : g.keySet()) {
            if (!known.contains(k)) {
                throw new ImageException("Invalid parameter '" + k + "'");
            }
        }
    }

    private static String event(Map<String, String> g) throws ImageException {
        String e = g.get("event");
        if (e == null) {
            throw new ImageException("Missing event name for rule");
        }
        if (!QEMU_EVENTS.contains(e)) {
            throw new ImageException("invalid parameter value: " + e);
        }
        if (kindOf(e) == null) {
            throw new ImageException("blkdebug event '" + e + "' is not supported by livemon (read_aio, write_aio,"
                    + " flush_to_disk and flush_to_os are)");
        }
        return e;
    }

    private static IoType kindOf(String event) {
        return switch (event) {
            case "read_aio" -> IoType.READ;
            case "write_aio" -> IoType.WRITE;
            case "flush_to_disk", "flush_to_os" -> IoType.FLUSH;
            default -> null;
        };
    }

    private static IoType ioType(String v) throws ImageException {
        return switch (v) {
            case "read" -> IoType.READ;
            case "write" -> IoType.WRITE;
            case "flush" -> IoType.FLUSH;
            case "write-zeroes", "discard", "block-status" -> throw new ImageException(
                    "blkdebug iotype '" + v + "' is not supported by livemon");
            default -> throw new ImageException("invalid parameter value: " + v);
        };
    }

    private static long number(Map<String, String> g, String key, long dflt) throws ImageException {
        String v = g.get(key);
        if (v == null) {
            return dflt;
        }
        try {
            return Long.decode(v);
        } catch (NumberFormatException e) {
            throw new ImageException("Parameter '" + key + "' expects a number");
        }
    }

    private static boolean bool(Map<String, String> g, String key) throws ImageException {
        String v = g.get(key);
        if (v == null) {
            return false;
        }
        return switch (v.toLowerCase(Locale.ROOT)) {
            case "on", "yes", "true", "y" -> true;
            case "off", "no", "false", "n" -> false;
            default -> throw new ImageException("Parameter '" + key + "' expects 'on' or 'off'");
        };
    }

    /** These rules followed by {@code more}'s (QEMU reads the config file, then the inline rules). */
    public BlkdebugRules with(BlkdebugRules more) {
        List<Rule> r = new ArrayList<>(rules());
        r.addAll(more.rules());
        List<SetState> st = new ArrayList<>(setStates);
        st.addAll(more.setStates);
        return new BlkdebugRules(r, st);
    }

    public synchronized List<Rule> rules() {
        return List.copyOf(rules);
    }

    public List<SetState> setStates() {
        return setStates;
    }

    /**
     * A request of {@code type} on [offset, offset+len) is about to be issued: raises the event it stands for
     * (arming that event's rules, applying set-state rules), then returns the injected error or null to let it pass.
     */
    public synchronized IOException check(IoType type, long offset, long len) {
        raise(type);
        suspendAtBreakpoint(type);
        for (Rule r : armed) {
            if (r.matches(type, offset, len)) {
                if (r.once()) {
                    armed.remove(r);
                    rules.remove(r);
                }
                return error(r.errno());
            }
        }
        return null;
    }

    private void raise(IoType type) {
        boolean reset = false;
        int newState = state;
        for (Rule r : rules) {
            if (kindOf(r.event()) == type && (r.state() == 0 || r.state() == state)) {
                if (!reset) {
                    armed.clear();
                    reset = true;
                }
                armed.add(0, r);
            }
        }
        for (SetState s : setStates) {
            if (kindOf(s.event()) == type && (s.state() == 0 || s.state() == state)) {
                newState = s.newState();
            }
        }
        state = newState;
    }

    /**
     * Holds the calling request when a breakpoint is set on the event it raises (block/blkdebug.c suspend_request):
     * the breakpoint is used up, and the request waits, this object's monitor released, until it is resumed. It then
     * meets the armed error rules as any request does.
     */
    private void suspendAtBreakpoint(IoType type) {
        for (java.util.Iterator<Breakpoint> it = breakpoints.iterator(); it.hasNext(); ) {
            Breakpoint b = it.next();
            if (released || kindOf(b.event()) != type) {
                continue;
            }
            it.remove();
            Suspended s = new Suspended(b.tag());
            suspended.add(s);
            notifyAll(); // wait_break
            while (!s.resumed && !released) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            suspended.remove(s);
            return;
        }
    }

    /**
     * qemu-io {@code break EVENT TAG}: the next request that raises {@code event} is suspended and tagged
     * {@code tag} (block/blkdebug.c blkdebug_debug_breakpoint). livemon raises read_aio, write_aio and the flush
     * events only (see the class comment).
     *
     * @return 0, {@code -ENOENT} (2) for a name that is not a blkdebug event, or {@code -ENOTSUP} (95) for an event
     *         livemon never raises (a breakpoint on it could never be hit)
     */
    public synchronized int addBreakpoint(String event, String tag) {
        if (!QEMU_EVENTS.contains(event)) {
            return -Errno.ENOENT.number;
        }
        if (kindOf(event) == null) {
            return -Errno.ENOTSUP.number;
        }
        breakpoints.add(new Breakpoint(event, tag));
        return 0;
    }

    /**
     * qemu-io {@code remove_break TAG}: drops the breakpoints tagged {@code tag} and resumes the requests suspended
     * under it (blkdebug_debug_remove_breakpoint). Returns 0, or {@code -ENOENT} (2) when there was neither.
     */
    public synchronized int removeBreakpoint(String tag) {
        boolean found = breakpoints.removeIf(b -> b.tag().equals(tag));
        return resumeTagged(tag) || found ? 0 : -Errno.ENOENT.number;
    }

    /** qemu-io {@code resume TAG}: resumes the requests suspended under {@code tag}; 0, or {@code -ENOENT} (2). */
    public synchronized int resume(String tag) {
        return resumeTagged(tag) ? 0 : -Errno.ENOENT.number;
    }

    private boolean resumeTagged(String tag) {
        boolean found = false;
        for (Suspended s : suspended) {
            if (s.tag.equals(tag) && !s.resumed) {
                s.resumed = true;
                found = true;
            }
        }
        notifyAll();
        return found;
    }

    /**
     * qemu-io {@code wait_break TAG}: waits until a request is suspended under {@code tag}, at most
     * {@code timeoutMs} milliseconds (QEMU waits for good; a monitor must not). Returns whether one is.
     */
    public synchronized boolean awaitSuspended(String tag, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        while (suspended.stream().noneMatch(s -> s.tag.equals(tag) && !s.resumed)) {
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                return false;
            }
            wait(left);
        }
        return true;
    }

    /** The image closes: every suspended request goes on, and no breakpoint suspends a request any more. */
    public synchronized void releaseAll() {
        released = true;
        notifyAll();
    }

    /** The I/O failure for an injected errno, carrying the errno (its message QEMU's strerror text). */
    static IOException error(int errno) {
        Errno e = Errno.ofNumber(errno);
        return e != null ? e.failure() : new IOException("Unknown error " + errno);
    }
}
