package io.livemon.block;

import io.livemon.image.Image;
import io.livemon.image.ImageException;
import io.livemon.image.Images;
import io.livemon.image.Qcow2CreateOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.util.function.Consumer;

/**
 * The target image of drive-mirror / drive-backup: created (with QEMU's {@code Formatting ...} line on stdout) or
 * reused ({@code mode=existing}, HMP {@code -n}), then opened as one layer. The steps and messages follow QEMU 7.2's
 * qmp_drive_mirror / drive_backup_prepare.
 */
final class JobTarget {
    /** The sync modes of drive-mirror/drive-backup (QAPI MirrorSyncMode). */
    enum Sync {
        TOP, FULL, NONE, INCREMENTAL, BITMAP;

        static Sync fromQapi(String s) {
            return valueOf(s.toUpperCase(java.util.Locale.ROOT));
        }

        String qapiName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    private JobTarget() {
    }

    /**
     * The node a target created for {@code sync} gets as backing file: the source itself for none, the source's
     * backing node for top, nothing otherwise.
     */
    static BlockNode backingFor(BlockNode source, Sync sync) {
        return switch (sync) {
            case NONE -> source;
            case TOP -> source.backing();
            default -> null;
        };
    }

    /**
     * Creates the target unless {@code reuse}, then opens it read-write (one layer; the caller attaches a backing
     * image). {@code format} null: the source's format when creating, probed when reusing.
     */
    static Image createAndOpen(BlockGraph graph, BlockNode source, String file, String format, boolean reuse,
                               BlockNode backing, Consumer<String> stdout) throws BlockException {
        return createAndOpen(graph, source, file, format, reuse, backing, false, stdout);
    }

    /**
     * As above; {@code openBacking}: QEMU creates the image with its backing file opened (drive-backup), so a
     * backing string that does not lead to a file from the target's directory fails as in QEMU 7.2 ("Could not open
     * 'sub/file-C.img': No such file or directory" / "Could not open backing image."), before anything is created.
     * The {@code Formatting} line shows QEMU's backing string (the backing node's name as opened); the string written
     * leads to the backing file from the target's own directory ({@link BackingNames#resolving}).
     */
    static Image createAndOpen(BlockGraph graph, BlockNode source, String file, String format, boolean reuse,
                               BlockNode backing, boolean openBacking, Consumer<String> stdout)
            throws BlockException {
        Image src = source.image();
        String fmt = format != null ? format : reuse ? null : src.format();
        if (fmt != null && !fmt.equals("qcow2") && !fmt.equals("raw")) {
            throw BlockErrors.unknownFormat(fmt);
        }
        if (!reuse) {
            if (backing != null) {
                if (fmt.equals("raw")) {
                    throw BlockErrors.rawHasNoBacking();
                }
                String qemuString = backing.displayName();
                try {
                    Images.checkBackingNotSelf(file, qemuString); // bdrv_img_create checks this before the open
                } catch (ImageException e) {
                    throw BlockErrors.ioOrEio(e);
                }
                if (openBacking && !BackingNames.hasProtocol(qemuString)) {
                    String combined = Images.pathCombine(file, qemuString);
                    if (!Files.exists(graph.cwd().resolve(combined))) {
                        throw BlockErrors.backingImageMissing(combined);
                    }
                }
            }
            create(graph, file, fmt, src.size(), backing, stdout);
        }
        try {
            Image img = Images.openJobTarget(graph.cwd(), file, fmt);
            if (fmt == null && img.format().equals("raw")) {
                graph.warnProbedRaw(file);
            }
            return img;
        } catch (IOException e) {
            throw BlockErrors.ioOrEio(e);
        }
    }

    /**
     * Creates {@code file} as {@code fmt} of {@code size} bytes over {@code backing} (null: none), as QEMU's
     * bdrv_img_create does for snapshot, mirror and backup targets: the {@code Formatting} line and QEMU's checks use
     * QEMU's backing string (the backing node's name as opened), the header gets a string that leads to the backing
     * file from the new image's own directory ({@link BackingNames#resolving}). Never harms an existing file
     * ({@link Images#create}).
     */
    static void create(BlockGraph graph, String file, String fmt, long size, BlockNode backing,
                       Consumer<String> stdout) throws BlockException {
        Qcow2CreateOptions shown = Qcow2CreateOptions.defaults();
        Qcow2CreateOptions written = shown;
        if (backing != null) {
            String qemuString = backing.displayName();
            shown = Qcow2CreateOptions.withBacking(qemuString, backing.image().format());
            written = Qcow2CreateOptions.withBacking(BackingNames.resolving(graph.cwd(), file, qemuString,
                    backing.image().path()), backing.image().format());
        }
        try {
            Images.create(graph.cwd(), file, fmt, size, shown, written, stdout);
        } catch (IOException e) {
            throw BlockErrors.ioOrEio(e);
        }
    }

    /** Undoes a failed start: drops the target's node if it was registered, else just closes the image. */
    static void discard(BlockGraph graph, BlockNode targetNode, Image target) {
        if (targetNode != null) {
            graph.dropNodes(java.util.List.of(targetNode));
        } else if (target != null) {
            DriveOperations.closeQuietly(target);
        }
    }

    /** The job id QEMU derives when none is given: the name of the device whose root is {@code node}, else "". */
    static String defaultJobId(BlockGraph graph, BlockNode node) {
        BlockDevice d = graph.deviceOf(node);
        return d != null && d.root().skipFilters() == node.skipFilters() ? d.id() : "";
    }

    static void checkJobId(String id) throws BlockException {
        if (!id.matches("[A-Za-z][A-Za-z0-9_.\\-]*")) {
            throw BlockErrors.invalidJobId(id);
        }
    }
}
