package io.livemon.block;

import io.livemon.image.Image;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/** Operations on whole drives: delete, resize, change medium, eject. */
public final class DriveOperations {
    private static final List<String> INTERFACES = List.of("none", "ide", "scsi", "floppy", "pflash", "mtd", "sd",
            "virtio", "xen");

    /**
     * The largest virtual size QEMU 7.2 lets a node have, in bytes (block/io.c BDRV_MAX_LENGTH: 2^63 rounded down to
     * QEMU's largest request alignment); a block_resize beyond it is refused before any image is touched.
     */
    static final long MAX_LENGTH = 9223372035781033984L;

    private DriveOperations() {
    }

    /** QEMU's numeric interface type, which its hot-add error shows. */
    public static int interfaceCode(String ifType) {
        return INTERFACES.indexOf(ifType);
    }

    public static void checkNotBusy(BlockGraph graph, BlockNode node) throws BlockException {
        graph.checkNotBusy(node);
    }

    /** drive_del: the drive and its nodes go away, its images are closed. Errors carry no prefix in HMP. */
    public static void deleteDrive(BlockGraph graph, String id) throws BlockException {
        BlockDevice d = graph.device(id);
        if (d == null) {
            BlockNode n = graph.findNode(id);
            if (n != null) {
                throw BlockErrors.nodeInUse(id);
            }
            throw BlockErrors.deviceNotFound(id);
        }
        if (d.root() != null) {
            graph.checkNotBusy(d.root());
        }
        graph.removeDevice(d);
    }

    /**
     * block_resize / QMP block_resize: the node's virtual size becomes {@code size} bytes. A node that a job holds
     * (its source, target or any node of the chain it works on) is refused, as QEMU's op blockers refuse it:
     * {@code Device 'ID' is in use} when named by device, {@code Device '(null)' is in use} when named by node.
     */
    public static void resize(BlockGraph graph, String device, String nodeName, long size) throws BlockException {
        BlockDevice d = device == null ? null : graph.device(device);
        BlockNode node;
        if (d != null && d.root() != null) {
            node = d.root();
            if (graph.blocker(node) != null || node.isFilter()) {
                throw BlockErrors.deviceInUse(device);
            }
        } else if (device == null && nodeName != null && graph.findNode(nodeName) != null) {
            node = graph.findNode(nodeName);
            if (graph.blocker(node) != null) {
                // QEMU 7.2's qmp_block_resize formats the absent device argument: "(null)" is its literal text
                throw BlockErrors.deviceInUse(null);
            }
        } else if (d != null) {
            throw BlockErrors.noMedium(device); // bdrv_lookup_bs: an empty drive
        } else {
            throw BlockErrors.cannotFind(device, nodeName);
        }
        if (size < 0) {
            throw BlockErrors.negativeSize();
        }
        if (size > MAX_LENGTH) {
            throw BlockErrors.offsetTooLarge(size, MAX_LENGTH);
        }
        try {
            node.skipFilters().image().resize(size);
        } catch (IOException e) {
            throw BlockErrors.ioOrEio(e);
        }
    }

    /**
     * eject: closes the medium; the drive stays, empty. Its tray stays closed: only a guest device with a tray
     * (ide-cd, scsi-cd) has one to open, and livemon attaches none of those.
     */
    public static void eject(BlockGraph graph, String id, boolean force) throws BlockException {
        BlockDevice d = graph.device(id);
        if (d == null) {
            throw BlockErrors.deviceNotFound(id);
        }
        if (!d.removable()) {
            throw BlockErrors.notRemovable(id);
        }
        if (d.root() != null) {
            graph.checkNotBusy(d.root());
            graph.removeMedium(d);
        }
    }

    /** change: a new medium in a removable drive. */
    public static void changeMedium(BlockGraph graph, String id, String file, String format, boolean force,
                                    String readOnlyMode) throws BlockException {
        BlockDevice d = graph.device(id);
        if (d == null) {
            throw BlockErrors.deviceNotFound(id);
        }
        if (readOnlyMode != null && !List.of("retain", "read-only", "read-write").contains(readOnlyMode)) {
            throw BlockErrors.invalidParameterValue(readOnlyMode);
        }
        if (!d.removable()) {
            throw BlockErrors.notRemovable(id);
        }
        if (d.root() != null) {
            graph.checkNotBusy(d.root());
        }
        boolean readOnly = "read-only".equals(readOnlyMode);
        graph.insertMedium(d, file, format, readOnly);
    }

    static List<BlockNode> chainOf(BlockNode top) {
        List<BlockNode> l = new ArrayList<>();
        for (BlockNode n = top == null ? null : top.skipFilters(); n != null; n = n.backing()) {
            l.add(n);
        }
        return l;
    }

    static void closeQuietly(Image i) {
        try {
            i.close();
        } catch (IOException ignored) {
            // closing after an error: the first error is the one to report
        }
    }
}
