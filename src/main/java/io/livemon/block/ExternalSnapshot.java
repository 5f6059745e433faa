package io.livemon.block;

import io.livemon.image.Image;
import io.livemon.image.Images;
import java.io.IOException;
import java.util.function.Consumer;

/**
 * snapshot_blkdev / blockdev-snapshot-sync: puts a new overlay on top of a drive's active image, backed by it, and
 * makes the overlay the drive's active image; the old top becomes read-only.
 */
public final class ExternalSnapshot {
    private ExternalSnapshot() {
    }

    /**
     * @param device       drive id (node names are not accepted, as in QEMU's HMP)
     * @param nodeName     node name of the old top for the QMP form ({@code node-name}), or null
     * @param file         the overlay file
     * @param format       null: qcow2
     * @param reuse        use an existing file ({@code -n}, {@code mode=existing})
     * @param newNodeName  node name for the overlay, or null for a generated one
     * @param stdout       receives QEMU's {@code Formatting ...} line
     */
    public static BlockNode take(BlockGraph graph, String device, String nodeName, String file, String format,
                                 boolean reuse, String newNodeName, Consumer<String> stdout) throws BlockException {
        BlockDevice d = device == null ? null : graph.device(device);
        BlockNode top = null;
        if (d != null && d.root() != null) {
            top = d.root();
        } else if (device == null && nodeName != null && graph.findNode(nodeName) != null) {
            top = graph.findNode(nodeName);
            d = graph.deviceOf(top);
        }
        // QEMU runs the whole action inside the transaction's drained section: jobs go on when it ends
        try (BlockGraph.Drained drained = graph.drainForTransaction(top)) {
            if (top == null) {
                if (d != null) {
                    throw BlockErrors.noMedium(device); // bdrv_lookup_bs: empty drive
                }
                throw BlockErrors.cannotFind(device, nodeName);
            }
            return takeDrained(graph, d, top, file, format, reuse, newNodeName, stdout);
        }
    }

    private static BlockNode takeDrained(BlockGraph graph, BlockDevice d, BlockNode top, String file, String format,
                                         boolean reuse, String newNodeName, Consumer<String> stdout)
            throws BlockException {
        if (file == null) {
            throw BlockErrors.snapshotFileMissing();
        }
        graph.checkNotBusy(top);
        BlockNode oldTop = top.skipFilters();
        BlockNode existingOverlay = graph.overlayOf(oldTop);
        if (existingOverlay != null) {
            throw BlockErrors.usedAsBacking(oldTop.name(), existingOverlay.name());
        }
        if (newNodeName != null && graph.findNode(newNodeName) != null) {
            throw BlockErrors.overlayNodeNameInUse();
        }
        String fmt = format == null ? "qcow2" : format;
        if (!fmt.equals("qcow2") && !fmt.equals("raw")) {
            throw BlockErrors.unknownFormat(fmt);
        }
        Image oldImage = oldTop.image();
        if (!reuse) {
            if (fmt.equals("raw")) {
                throw BlockErrors.rawHasNoBacking();
            }
            // QEMU writes the old top's name as opened ("file-E.img" into sub/snap.img, where it does not resolve);
            // its Formatting line shows that string, the header gets one that leads to the old top (BackingNames).
            JobTarget.create(graph, file, "qcow2", oldImage.size(), oldTop, stdout);
        }
        if (fmt.equals("raw")) {
            // QEMU 7.2's external_snapshot_prepare: a raw overlay cannot carry the old top as its backing file
            throw BlockErrors.overlayWithoutBacking();
        }
        Image overlay;
        try {
            overlay = Images.open(graph.cwd(), file, fmt, false);
        } catch (IOException e) {
            throw BlockErrors.ioOrEio(e);
        }
        try {
            overlay.setBacking(oldImage);
        } catch (RuntimeException e) {
            DriveOperations.closeQuietly(overlay);
            throw BlockErrors.unchecked(e);
        }
        // Switch the drive first, then reopen the old top read-only: a guest write that is already on its way to
        // the old top still lands (it came before the snapshot), and no new write finds a read-only disk.
        BlockNode overlayNode = graph.attachOverlay(d, overlay, newNodeName, oldTop);
        // QEMU opens the overlay without its backing file and attaches the old top: it takes the header to name the
        // string it wrote itself, or, for an existing overlay (-n), the overlay's own string; when that is not the
        // old top's name, it shows the overlay as a json: pseudo-filename.
        String header = overlay.backingFileString();
        overlayNode.setAutoBackingFile(!reuse ? oldTop.displayName() : header == null ? "" : header);
        try {
            oldImage.flush();
            oldImage.setReadOnly(true);
        } catch (IOException e) {
            if (d != null) {
                graph.setRoot(d, oldTop);
            }
            graph.dropNodes(java.util.List.of(overlayNode));
            throw BlockErrors.ioOrEio(e);
        }
        return overlayNode;
    }
}
