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

    public String filename() {
        return image.filename();
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
        ioTarget().image.read(offset, buf, off, len);
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
