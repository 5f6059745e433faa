package io.livemon.block;

import io.livemon.image.Images;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Backing file names as QEMU 7.2 resolves them, and the backing strings livemon writes.
 *
 * <p>Lookup: a name given to block-stream ({@code base}) or block-commit ({@code top}, {@code base}) is found the way
 * QEMU's bdrv_find_backing_image (block.c) finds it: walking down from the named node, the name is read relative to
 * the directory of each overlay in turn and compared, by real path, with that overlay's own backing string read the
 * same way. A name relative to livemon's working directory is therefore not found when the images live in a
 * subdirectory ({@code img/file-B.img} for a chain in {@code img/}), exactly as in QEMU.
 *
 * <p>Writing: QEMU writes strings such as the base's file name as opened ({@code img/file-B.img}) into an image in
 * {@code img/}, where the string no longer leads to the file. livemon writes QEMU's string wherever it does lead to
 * the right file from the image's own directory, and otherwise a relative path that does (the deliberate difference
 * "Backing strings that always resolve" of shared/README.md), so that every chain it leaves opens with qemu-img.
 */
final class BackingNames {
    private BackingNames() {
    }

    /**
     * QEMU's bdrv_find_backing_image: the node below {@code top} that {@code name} names, or null. Where a node's
     * backing was overridden (it is not what its header names), only the exact file name of the backing node
     * matches, as in QEMU.
     */
    static BlockNode findBackingImage(BlockGraph graph, BlockNode top, String name) {
        Path cwd = graph.cwd();
        boolean nameIsProtocol = hasProtocol(name);
        for (BlockNode curr = top.skipFilters(); curr.backing() != null; curr = curr.backing()) {
            BlockNode below = curr.backing();
            // QEMU compares with its own string, which differs from livemon's where livemon wrote one that resolves
            String written = curr.qemuBackingString();
            if (curr.backingOverridden()) {
                if (name.equals(below.displayName())) {
                    return below;
                }
            } else if (nameIsProtocol || (written != null && hasProtocol(written))) {
                if (name.equals(written) || (written != null
                        && name.equals(Images.pathCombine(curr.filename(), written)))) {
                    return below;
                }
            } else if (written != null) {
                Path wanted = realPath(cwd.resolve(Images.pathCombine(curr.filename(), name)));
                Path have = realPath(cwd.resolve(Images.pathCombine(curr.filename(), written)));
                if (wanted != null && wanted.equals(have)) {
                    return below;
                }
            }
        }
        return null;
    }

    /**
     * The backing string to write into the image opened as {@code imageFilename} so that it leads to
     * {@code backingFile} (a path relative to {@code cwd} or absolute): {@code qemuString} (what QEMU 7.2 writes) when
     * it leads there from the image's directory, else the path of the backing file relative to that directory (or,
     * when symbolic links defeat a relative path, its real absolute path). A protocol string ({@code nbd:...}) is
     * kept as it is; a {@code json:} pseudo-filename is replaced by a path.
     */
    static String resolving(Path cwd, String imageFilename, String qemuString, Path backingFile) {
        boolean pseudo = qemuString != null && qemuString.startsWith("json:"); // names the file relative to cwd
        if (qemuString == null || qemuString.isEmpty() || (hasProtocol(qemuString) && !pseudo)
                || (!pseudo && leadsTo(cwd, imageFilename, qemuString, backingFile))) {
            return qemuString;
        }
        Path dir = cwd.resolve(imageFilename).toAbsolutePath().normalize().getParent();
        Path target = cwd.resolve(backingFile).toAbsolutePath().normalize();
        if (dir != null) {
            String rel = dir.relativize(target).toString();
            if (!rel.isEmpty() && leadsTo(cwd, imageFilename, rel, backingFile)) {
                return rel;
            }
        }
        Path real = realPath(target);
        return real != null ? real.toString() : target.toString();
    }

    /**
     * The string a job writes into {@code overlay}'s header for its new backing node {@code backing}: QEMU's string
     * made to resolve ({@link #resolving}); a string the user gave ({@code backing-file}) is written as given, and
     * refused when it does not lead to {@code backing}.
     */
    static String forOverlay(BlockGraph graph, BlockNode overlay, String qemuString, boolean userGiven,
                             BlockNode backing) throws BlockException {
        Path backingFile = backing.image().path();
        if (userGiven) {
            if (!hasProtocol(qemuString) && !leadsTo(graph.cwd(), overlay.filename(), qemuString, backingFile)) {
                throw BlockErrors.backingStringDoesNotResolve(qemuString, overlay.filename(), backing.filename());
            }
            return qemuString;
        }
        return resolving(graph.cwd(), overlay.filename(), qemuString, backingFile);
    }

    /** Whether {@code string}, read from the directory of {@code imageFilename}, names the file {@code target}. */
    static boolean leadsTo(Path cwd, String imageFilename, String string, Path target) {
        Path p = realPath(cwd.resolve(Images.pathCombine(imageFilename, string)));
        return p != null && p.equals(realPath(cwd.resolve(target)));
    }

    /** QEMU's path_has_protocol: a colon before the first slash. */
    static boolean hasProtocol(String path) {
        for (int i = 0; i < path.length(); i++) {
            char c = path.charAt(i);
            if (c == '/') {
                return false;
            }
            if (c == ':') {
                return true;
            }
        }
        return false;
    }

    private static Path realPath(Path p) {
        try {
            return p.toRealPath();
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
