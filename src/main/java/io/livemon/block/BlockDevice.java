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
        if (backendWrite) {
            grant(this.root, false);
            grant(root, true);
        }
        this.root = root;
    }

    /**
     * Whether this drive's BlockBackend holds write permission in QEMU's model: a qemu-io write or discard on the
     * drive extends its permissions for good (qemu-io-cmds.c command()). It follows the root through snapshots and
     * pivots, and decides only which lock error QEMU would give a new writer of a raw root image
     * ({@link io.livemon.image.Image#setBackendWritePermission}).
     */
    private volatile boolean backendWrite;

    /** A qemu-io command that writes ran on this drive (see {@link #backendWrite}). */
    public void takeBackendWrite() {
        if (!backendWrite) {
            backendWrite = true;
            grant(root, true);
        }
    }

    private static void grant(BlockNode node, boolean held) {
        if (node == null) {
            return;
        }
        io.livemon.image.Image image = node.skipFilters().image();
        if (image != null) {
            image.setBackendWritePermission(held);
        }
    }

    /** The root without implicit filters: what {@code info block} shows. */
    public BlockNode visibleRoot() {
        BlockNode n = root;
        while (n != null && n.isFilter() && n.implicit()) {
            n = n.child();
        }
        return n;
    }

    /**
     * The guest device the drive is attached to ({@code -device}, {@code device_add}): its qdev id, or its QOM path
     * when it was given none; null while no device holds the drive. Written under the graph lock.
     */
    private volatile String attachedTo;
    /** Whether the attached device has removable media (QEMU's scsi-cd, ide-cd; not scsi-hd or virtio-blk). */
    private volatile boolean removableMedia;

    /**
     * Without a guest device a drive counts as removable (QEMU's {@code -drive if=none}); with one, as the device
     * says (every device model livemon attaches is a disk with fixed media).
     */
    public boolean removable() {
        return attachedTo == null || removableMedia;
    }

    /** The qdev id (or QOM path) of the guest device holding the drive, null when none does. */
    public String attachedTo() {
        return attachedTo;
    }

    void attach(String qdev, boolean removable) {
        this.attachedTo = qdev;
        this.removableMedia = removable;
    }

    /** {@code info block}'s words: writeback, writethrough, with ", direct" / ", ignore flushes". */
    public String cacheMode() {
        return cacheMode;
    }
}
