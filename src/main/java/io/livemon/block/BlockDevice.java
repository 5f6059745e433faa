package io.livemon.block;

/**
 * A drive as the guest (and {@code info block}) sees it: QEMU's BlockBackend. It has an id ({@code virtio0}), an
 * interface type and a root node that jobs may swap (snapshot, mirror pivot) or cover with a filter.
 */
public final class BlockDevice {
    private final String id;
    private final String interfaceType;
    /** The node guest I/O enters; replaced under the graph lock. Null when no medium is inserted. */
    private volatile BlockNode root;
    private final String cacheMode;

    BlockDevice(String id, String interfaceType, BlockNode root, String cacheMode) {
        this.id = id;
        this.interfaceType = interfaceType;
        this.root = root;
        this.cacheMode = cacheMode;
    }

    public String id() {
        return id;
    }

    public String interfaceType() {
        return interfaceType;
    }

    /** The root node, possibly a job's filter; null when the drive is empty. */
    public BlockNode root() {
        return root;
    }

    void setRoot(BlockNode root) {
        this.root = root;
    }

    /** The root without implicit filters: what {@code info block} shows. */
    public BlockNode visibleRoot() {
        BlockNode n = root;
        while (n != null && n.isFilter() && n.implicit()) {
            n = n.child();
        }
        return n;
    }

    /** Without a guest device a drive counts as removable (QEMU's {@code -drive if=none}). */
    public boolean removable() {
        return true;
    }

    /** {@code info block}'s words: writeback, writethrough, with ", direct" / ", ignore flushes". */
    public String cacheMode() {
        return cacheMode;
    }
}
