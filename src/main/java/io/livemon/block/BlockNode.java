package io.livemon.block;

import io.livemon.image.Image;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A node of the block graph: a format node (qcow2/raw image layer, with its protocol child and its backing node),
 * the protocol ("file") node under it, or a filter a job inserts above a node (e.g. stream's copy-on-read).
 * Guest I/O enters at a device's root node and is passed down to the image that serves it.
 */
public final class BlockNode {

    /** What kind of node this is, for routing I/O and for {@code info block -n}. */
    public enum Role { FORMAT, PROTOCOL, FILTER }

    private final String name;
    private final boolean autoNamed;
    private final Role role;
    /** Driver name as QEMU shows it: qcow2, raw, file, copy-on-read. */
    private final String driver;
    /** The image this node serves (for a protocol node: the image of its format parent). */
    private final Image image;
    /** Protocol child of a format node; the filtered node of a filter; null for protocol nodes. */
    private final BlockNode child;
    /** The backing node in the chain (format nodes only); changed by jobs under the graph lock. */
    private volatile BlockNode backing;
    /** Implicit filters (inserted by a job without a name) are skipped by {@code info block}. */
    private final boolean implicit;
    /** Set when a mirror switched the drive over to another node: late I/O through this node follows it. */
    private volatile BlockNode replacedBy;
    /**
     * QEMU's auto_backing_file: the backing file name QEMU would consider this node's header to name, or null while
     * the backing node is the one the header named when the chain was opened. When it differs from the backing
     * node's file name, the backing is "overridden" and QEMU shows the node's name as a {@code json:} pseudo-filename.
     */
    private volatile String autoBackingFile;
    /** {@code discard=unmap}: guest discards reach the image (QEMU's default, ignore, drops them). */
    private volatile boolean discardUnmap;
    /** {@code detect-zeroes}: "off", "on" or "unmap". */
    private volatile String detectZeroes = "off";
    /** Guest-write observers (jobs); copy-on-write so the write path takes no lock to read it. */
    private final List<WriteListener> writeListeners = new CopyOnWriteArrayList<>();

    BlockNode(String name, boolean autoNamed, Role role, String driver, Image image, BlockNode child,
              boolean implicit) {
        this.name = name;
        this.autoNamed = autoNamed;
        this.role = role;
        this.driver = driver;
        this.image = image;
        this.child = child;
        this.implicit = implicit;
    }

    public String name() {
        return name;
    }

    public boolean autoNamed() {
        return autoNamed;
    }

    public Role role() {
        return role;
    }

    public String driver() {
        return driver;
    }

    public Image image() {
        return image;
    }

    public BlockNode child() {
        return child;
    }

    public BlockNode backing() {
        return backing;
    }

    void setBacking(BlockNode backing) {
        this.backing = backing;
    }

    public boolean implicit() {
        return implicit;
    }

    public boolean isFilter() {
        return role == Role.FILTER;
    }

    /** The format node below any filters. */
    public BlockNode skipFilters() {
        BlockNode n = this;
        while (n.role == Role.FILTER) {
            n = n.child;
        }
        return n;
    }

    /** The file name as opened (relative to livemon's working directory, or absolute). */
    public String filename() {
        return image.filename();
    }

    /**
     * The node's file name as QEMU 7.2 shows it ({@code info block}, query-block's {@code file}): the file name as
     * opened, or, when its backing was overridden (a {@code backing-file} string that names another spelling, a
     * snapshot onto an existing overlay, {@code backing.file.filename}, {@code backing=} on the command line), QEMU's
     * {@code json:{...}} pseudo-filename (block.c bdrv_refresh_filename), e.g.
     * {@code json:{"backing": {"driver": "qcow2", "file": {"driver": "file", "filename": "file-B.img"}}, "driver":
     * "qcow2", "file": {"driver": "file", "filename": "file-E.img"}}}.
     */
    public String displayName() {
        if (role != Role.FORMAT || !backingOverridden()) {
            return filename();
        }
        StringBuilder sb = new StringBuilder("json:");
        appendOptions(sb, this);
        return sb.toString();
    }

    /** The options QEMU shows for a format node in a json: filename: backing (when overridden), driver, file. */
    private static void appendOptions(StringBuilder sb, BlockNode n) {
        sb.append('{');
        if (n.backingOverridden()) {
            sb.append("\"backing\": ");
            if (n.backing == null) {
                sb.append("null");
            } else {
                appendOptions(sb, n.backing);
            }
            sb.append(", ");
        }
        sb.append("\"driver\": ");
        appendJsonString(sb, n.driver);
        sb.append(", \"file\": {\"driver\": \"file\", \"filename\": ");
        appendJsonString(sb, n.filename());
        sb.append("}}");
    }

    private static void appendJsonString(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }

    /**
     * Records the backing file name QEMU would take this node's header to name ({@code null}: the backing node is
     * the one the header named at open). Called where QEMU sets auto_backing_file: a job writing a backing string,
     * a node opened with its backing given explicitly.
     */
    void setAutoBackingFile(String name) {
        this.autoBackingFile = name;
    }

    /**
     * The backing string QEMU's node would carry (its backing_file): what QEMU 7.2 wrote where a job or snapshot
     * wrote one this session, else the header's own string. Names typed at the monitor are looked up against it, so
     * they behave as in QEMU even where livemon wrote a different, resolving string (BackingNames).
     */
    String qemuBackingString() {
        String auto = autoBackingFile;
        return auto != null ? auto : image.backingFileString();
    }

    /**
     * Opened with {@code read-only: true} by blockdev-add / -blockdev: QEMU then has no BDRV_O_ALLOW_RDWR for it, so
     * a job that would make it writable fails with {@code Block node is read-only} (block.c bdrv_can_set_read_only).
     * A {@code -drive readonly=on} may still be reopened read-write, as in QEMU.
     */
    private volatile boolean fixedReadOnly;

    boolean fixedReadOnly() {
        return fixedReadOnly;
    }

    void setFixedReadOnly(boolean on) {
        this.fixedReadOnly = on;
    }

    /** Set on a stream's copy-on-read filter: guest reads copy data up into the top ({@link #read}). */
    private volatile boolean copyOnRead;
    /** The stream's base image: copy-on-read stops above it (null = the whole chain). */
    private volatile Image copyOnReadBase;

    /** Whether guest discards reach this node's image ({@code discard=unmap}). */
    public boolean discardUnmap() {
        return discardUnmap;
    }

    /** The {@code detect-zeroes} mode: "off", "on" or "unmap". */
    public String detectZeroes() {
        return detectZeroes;
    }

    /** Sets the guest-facing drive options (at open; a snapshot's overlay takes them over from the old top). */
    void setGuestOptions(boolean discardUnmap, String detectZeroes) {
        this.discardUnmap = discardUnmap;
        this.detectZeroes = detectZeroes;
    }

    /** QEMU's bdrv_backing_overridden: the backing node is not the file the header names (as QEMU reads it). */
    public boolean backingOverridden() {
        String auto = autoBackingFile;
        if (auto == null || role != Role.FORMAT) {
            return false;
        }
        BlockNode b = backing;
        return b != null ? !auto.equals(b.displayName()) : !auto.isEmpty();
    }

    public boolean readOnly() {
        return image.isReadOnly();
    }

    /** Number of images below this one in its backing chain. */
    public int chainDepth() {
        int d = 0;
        for (BlockNode b = skipFilters().backing; b != null; b = b.backing) {
            d++;
        }
        return d;
    }

    void setReplacedBy(BlockNode n) {
        this.replacedBy = n;
    }

    /** The format node I/O through this node goes to: below filters, following a completed mirror's switch-over. */
    private BlockNode ioTarget() {
        BlockNode n = skipFilters();
        while (n.replacedBy != null) {
            n = n.replacedBy.skipFilters();
        }
        return n;
    }

    void addWriteListener(WriteListener l) {
        writeListeners.add(l);
    }

    void removeWriteListener(WriteListener l) {
        writeListeners.remove(l);
    }

    // ---------------------------------------------------------------- guest I/O path

    public long size() {
        return skipFilters().image.size();
    }

    public void read(long offset, byte[] buf, int off, int len) throws IOException {
        BlockNode target = ioTarget();
        for (BlockNode f = this; f != null && f.isFilter(); f = f.child) {
            if (f.copyOnRead) {
                // QEMU's copy-on-read filter (block/copy-on-read.c, a stream's): what the guest reads from below the
                // top and above the stream's base is written into the top first, so the stream need not copy it
                target.image.copyUpFromBacking(offset, len, f.copyOnReadBase);
                break;
            }
        }
        target.image.read(offset, buf, off, len);
    }

    /**
     * Makes this filter node copy on read, as the copy-on-read filter a stream inserts: data the guest reads that
     * lies above {@code base} (exclusive; null = the whole backing chain) is copied into the top image.
     */
    void setCopyOnRead(Image base) {
        this.copyOnReadBase = base;
        this.copyOnRead = true;
    }

    public void write(long offset, byte[] buf, int off, int len) throws IOException {
        Entry e = enter(offset, len);
        try {
            e.target.image.write(offset, buf, off, len);
        } finally {
            notifyAfter(e.listeners, offset, len);
        }
    }

    public void writeZeroes(long offset, long len) throws IOException {
        Entry e = enter(offset, len);
        try {
            e.target.image.writeZeroes(offset, len);
        } finally {
            notifyAfter(e.listeners, offset, len);
        }
    }

    /**
     * A compressed write ({@link Image#writeCompressed}) on the node's I/O path, so that jobs' write listeners
     * (copy-before-write, dirty tracking) see it like any other write.
     */
    public void writeCompressed(long offset, byte[] buf, int off, int len) throws IOException {
        Entry e = enter(offset, len);
        try {
            e.target.image.writeCompressed(offset, buf, off, len);
        } finally {
            notifyAfter(e.listeners, offset, len);
        }
    }

    public void discard(long offset, long len) throws IOException {
        Entry e = enter(offset, len);
        try {
            e.target.image.discard(offset, len);
        } finally {
            notifyAfter(e.listeners, offset, len);
        }
    }

    public void flush() throws IOException {
        skipFilters().image.flush();
    }

    /** Thrown by a listener's beforeWrite when the node was switched over while the write waited: retry it. */
    static final class Redirected extends IOException {
        Redirected() {
            super("switched over", null);
        }
    }

    /** Where a write goes and the listeners whose beforeWrite it passed. */
    private record Entry(BlockNode target, Object[] listeners) {
    }

    /** Resolves a write's node and passes its listeners; follows a switch-over that happens meanwhile. */
    private Entry enter(long offset, long len) throws IOException {
        while (true) {
            BlockNode target = ioTarget();
            Object[] listeners;
            try {
                listeners = target.notifyBefore(offset, len);
            } catch (Redirected r) {
                continue;
            }
            if (listeners.length == 0 && target.replacedBy != null) {
                continue; // switched over (and its listener gone) while this request arrived
            }
            return new Entry(target, listeners);
        }
    }

    /** Calls beforeWrite; returns the listeners called, so that the same ones (and only they) see afterWrite. */
    private Object[] notifyBefore(long offset, long len) throws IOException {
        Object[] listeners = writeListeners.toArray();
        for (Object l : listeners) {
            ((WriteListener) l).beforeWrite(offset, len);
        }
        return listeners;
    }

    private static void notifyAfter(Object[] listeners, long offset, long len) {
        for (Object l : listeners) {
            ((WriteListener) l).afterWrite(offset, len);
        }
    }

    @Override
    public String toString() {
        return name + "(" + driver + ")";
    }
}
