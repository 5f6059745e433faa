package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** Static entry points: open images and backing chains, create images. */
public final class Images {
    /** Longest backing chain accepted (images below the top). */
    public static final int MAX_CHAIN_DEPTH = 1000;
    static final String BACKING_PREFIX = "Could not open backing file: ";

    private Images() {
    }

    /** QEMU's path_combine: an absolute name as is, a relative one joined to the directory part of {@code base}. */
    public static String pathCombine(String base, String name) {
        if (name.startsWith("/") || hasProtocol(name)) {
            return name; // as QEMU's path_combine: absolute names and protocol strings stand alone
        }
        int i = base.lastIndexOf('/');
        return i < 0 ? name : base.substring(0, i + 1) + name;
    }

    /** QEMU's path_has_protocol: a prefix {@code proto:} before any slash ({@code blkdebug::img}, {@code json:}). */
    public static boolean hasProtocol(String name) {
        int colon = name.indexOf(':');
        int slash = name.indexOf('/');
        return colon > 0 && (slash < 0 || colon < slash);
    }

    /** "qcow2" when the file starts with the qcow2 magic, else "raw". */
    public static String probe(Path p, String filename) throws ImageException {
        FileChannel c = ChannelIo.openChannel(p, filename, true);
        try {
            byte[] m = new byte[4];
            ChannelIo.readAt(c, m, 0, 4, 0);
            return ByteBuffer.wrap(m).getInt() == Qcow2Format.MAGIC ? "qcow2" : "raw";
        } catch (ImageException e) {
            throw e;
        } catch (IOException e) {
            throw new ImageException("Could not open '" + filename + "': " + e.getMessage(), e);
        } finally {
            ImageLocks.close(c, p); // the file may be open (and locked) as an image already
        }
    }

    /** Opens one layer (no backing image attached; backing() is null). */
    public static Image open(Path cwd, String filename, String format, boolean readOnly) throws IOException {
        return open(cwd, filename, format, readOnly, Qcow2Image.Options.defaults());
    }

    public static Image open(Path cwd, String filename, String format, boolean readOnly, Qcow2Image.Options opts)
            throws IOException {
        return open(cwd, filename, format, readOnly, opts, false);
    }

    /**
     * Opens an existing file read-write as a job's target (drive_mirror/drive_backup {@code -n}, or a target just
     * created). As QEMU's bdrv_open of a node nothing is attached to yet: a raw node takes no permission until the
     * job attaches it, so only livemon's own protection can refuse it here ({@link StricterThanQemu}, with the size
     * the job compares first).
     */
    public static Image openJobTarget(Path cwd, String filename, String format) throws IOException {
        return open(cwd, filename, format, false, Qcow2Image.Options.defaults(), true);
    }

    private static Image open(Path cwd, String filename, String format, boolean readOnly, Qcow2Image.Options opts,
                              boolean unattached) throws IOException {
        if (filename.startsWith(BLKDEBUG_PREFIX)) {
            // QEMU's blkdebug filename syntax, blkdebug:[CONFIG]:FILE (block/blkdebug.c blkdebug_parse_filename)
            String rest = filename.substring(BLKDEBUG_PREFIX.length());
            int colon = rest.indexOf(':');
            if (colon < 0) {
                throw new ImageException("Could not open '" + filename + "': blkdebug requires both config file "
                        + "and image path");
            }
            String config = rest.substring(0, colon);
            BlkdebugRules rules = config.isEmpty() ? BlkdebugRules.none() : BlkdebugRules.read(cwd, config);
            return openBlkdebug(cwd, rest.substring(colon + 1), format, readOnly, rules);
        }
        Path p = cwd.resolve(filename);
        if (!Files.exists(p)) {
            throw new ImageException("Could not open '" + filename + "': No such file or directory");
        }
        ImageFiles.checkOpenable(p, filename);
        String fmt = format != null ? format : probe(p, filename);
        switch (fmt) {
            case "qcow2":
                return Qcow2Image.open(p, filename, readOnly, opts);
            case "raw":
                return unattached ? RawImage.openUnattached(p, filename) : RawImage.open(p, filename, readOnly);
            default:
                throw new ImageException("Unknown driver '" + fmt + "'");
        }
    }

    /**
     * Opens one layer (no backing attached) whose file is reached through a blkdebug protocol layer: every request
     * the layer makes to its file passes {@code rules} first ({@link BlkdebugChannel}), so an injected error surfaces
     * as an IOException (e.g. "Input/output error") from the read or write that met it. qcow2 and raw layers.
     */
    public static Image openBlkdebug(Path cwd, String filename, String format, boolean readOnly,
                                     BlkdebugRules rules) throws IOException {
        Path p = cwd.resolve(filename);
        if (!Files.exists(p)) {
            throw new ImageException("Could not open '" + filename + "': No such file or directory");
        }
        ImageFiles.checkOpenable(p, filename);
        String fmt = format != null ? format : probe(p, filename);
        if (fmt.equals("raw")) {
            return RawImage.openWrapped(p, filename, readOnly, c -> new BlkdebugChannel(c, rules));
        }
        return Qcow2Image.openWrapped(p, filename, readOnly, Qcow2Image.Options.defaults(),
                c -> new BlkdebugChannel(c, rules));
    }

    /** Opens {@code filename} and its whole backing chain (backing images read-only). */
    /** The protocol prefix of QEMU's blkdebug filenames ({@code blkdebug:[CONFIG]:FILE}). */
    static final String BLKDEBUG_PREFIX = "blkdebug:";

    public static Image openChain(Path cwd, String filename, String format, boolean readOnly) throws IOException {
        return openChain(cwd, filename, format, readOnly, Qcow2Image.Options.defaults());
    }

    public static Image openChain(Path cwd, String filename, String format, boolean readOnly,
                                  Qcow2Image.Options opts) throws IOException {
        List<Image> opened = new ArrayList<>();
        Set<Path> seen = new HashSet<>();
        String name = filename;
        String fmt = format;
        // A writable top is first opened read-only and reopened writable only once the whole chain has opened:
        // a writable qcow2 open may write (dirty-image repair, clearing autoclear bits), and an open that then
        // fails on a missing or damaged backing file must leave the top image untouched.
        boolean ro = true;
        try {
            for (int depth = 0; ; depth++) {
                String prefix = BACKING_PREFIX.repeat(depth);
                if (depth > MAX_CHAIN_DEPTH) {
                    throw new ImageException(prefix + "Backing chain of '" + filename + "' is too deep (more than "
                            + MAX_CHAIN_DEPTH + " backing files)");
                }
                Path p = cwd.resolve(name);
                if (Files.exists(p)) {
                    Path real = p.toRealPath();
                    if (!seen.add(real)) {
                        throw new ImageException(prefix + "Failed to get shared \"write\" lock\n"
                                + "Is another process using the image [" + name + "]?");
                    }
                }
                if (depth == 0 && !readOnly && Files.exists(p)) {
                    ImageFiles.checkOpenable(p, name);
                    // QEMU checks the writer's permissions first ("Failed to get "write" lock"); the read-only
                    // first open below would report the reader's conflict instead.
                    ImageLocks.acquire(p, name, ImageLocks.Mode.WRITE, false, () -> true).release();
                }
                Image img;
                try {
                    img = open(cwd, name, fmt, ro, opts);
                } catch (ImageException e) {
                    throw new ImageException(prefix + e.getMessage(), e);
                }
                if (!opened.isEmpty()) {
                    opened.get(opened.size() - 1).setBacking(img);
                }
                opened.add(img);
                String b = img.backingFileString();
                if (b == null || b.isEmpty()) {
                    if (readOnly) {
                        return opened.get(0);
                    }
                    // The read-only top goes first: it holds the file's read lock and refuses writers (QEMU's
                    // locking, see ImageLocks), the writable one would conflict with it.
                    Image ro0 = opened.remove(0);
                    Image below = ro0.backing();
                    ro0.close();
                    Image top;
                    try {
                        top = open(cwd, filename, format, false, opts);
                    } catch (ImageException e) {
                        throw new ImageException(e.getMessage(), e);
                    }
                    opened.add(0, top);
                    top.setBacking(below);
                    return top;
                }
                name = pathCombine(img.filename(), b);
                fmt = img.backingFormatString();
                ro = true;
            }
        } catch (IOException | RuntimeException e) {
            for (Image i : opened) {
                try {
                    i.close();
                } catch (IOException ignored) {
                    // already failing
                }
            }
            throw e;
        }
    }

    /** Closes an image and every image below it. */
    public static void closeChain(Image top) throws IOException {
        IOException first = null;
        for (Image i = top; i != null; ) {
            Image next = i.backing();
            try {
                i.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                }
            }
            i = next;
        }
        if (first != null) {
            throw first;
        }
    }

    /** Shared implementation of {@link Image#isAllocatedAbove}. */
    public static Allocation isAllocatedAbove(Image top, long offset, long maxLen, Image base) throws IOException {
        return isAllocatedAbove(top, offset, maxLen, base, false);
    }

    /**
     * As {@link #isAllocatedAbove(Image, long, long, Image)}; with {@code qemuSteps}, each layer looked at answers
     * as QEMU's driver does ({@link Image#qemuBlockStatus}), as in QEMU's bdrv_is_allocated_above: the steps of a
     * throttled stream and of an intermediate commit, and so where they sleep, are QEMU's.
     */
    public static Allocation isAllocatedAbove(Image top, long offset, long maxLen, Image base, boolean qemuSteps)
            throws IOException {
        long len = Math.max(0, Math.min(maxLen, top.size() - offset));
        if (len == 0) {
            return new Allocation(false, 0);
        }
        for (Image img = top; img != null && img != base; img = img.backing()) {
            if (img != top && offset >= img.size()) {
                // past the end of a shorter intermediate layer: reads as zeroes synthesised by that layer
                return new Allocation(true, len);
            }
            BlockStatus s = qemuSteps ? img.qemuBlockStatus(offset, len) : img.blockStatus(offset, len);
            if (s.allocated()) {
                return new Allocation(true, s.length());
            }
            if (s.length() > 0) {
                len = Math.min(len, s.length());
            }
        }
        return new Allocation(false, len);
    }

    // ------------------------------------------------------------------ create

    /**
     * Creates an image as QEMU's monitor commands do (block.c bdrv_img_create): refuses a backing file named like the
     * image itself, hands QEMU's {@code Formatting ...} line to {@code formatting} (QEMU prints it even when the
     * creation then fails), then creates the image with {@link #createRaw} or {@link #createQcow2}.
     *
     * @param fmt  "raw" or "qcow2"
     * @param size virtual size in bytes
     * @param o    qcow2 options (null: defaults; ignored for raw)
     * @throws ImageException {@code Error: Trying to create an image with the same filename as the backing file}
     *                        (QEMU's text carries the prefix itself), or any creation error, the old file untouched
     */
    public static void create(Path cwd, String filename, String fmt, long size, Qcow2CreateOptions o,
                              java.util.function.Consumer<String> formatting) throws IOException {
        create(cwd, filename, fmt, size, o, o, formatting);
    }

    /**
     * As {@link #create(Path, String, String, long, Qcow2CreateOptions, java.util.function.Consumer)}, where the
     * options QEMU would show ({@code shown}: its {@code Formatting} line and same-name check use QEMU's backing
     * string) differ from those written ({@code written}: a backing string that resolves from the image's own
     * directory, see block/BackingNames).
     */
    public static void create(Path cwd, String filename, String fmt, long size, Qcow2CreateOptions shown,
                              Qcow2CreateOptions written, java.util.function.Consumer<String> formatting)
            throws IOException {
        checkBackingNotSelf(filename, shown == null ? null : shown.backingFile());
        formatting.accept(formattingLine(filename, fmt, size, shown));
        if ("raw".equals(fmt)) {
            createRaw(cwd, filename, size);
        } else {
            createQcow2(cwd, filename, size, written);
        }
    }

    /**
     * QEMU's first check in bdrv_img_create (block.c), before it opens the backing file: the backing file string may
     * not be the new image's own name, compared as typed.
     *
     * @param backingString QEMU's backing string (null: none)
     * @throws ImageException {@code Error: Trying to create an image with the same filename as the backing file}
     */
    public static void checkBackingNotSelf(String filename, String backingString) throws ImageException {
        if (filename.equals(backingString)) {
            throw new ImageException("Error: Trying to create an image with the same filename as the backing file");
        }
    }

    /**
     * {@code qemu-img create -f raw}: a sparse file of {@code size} bytes. Never harms an existing file: see
     * {@link ImageCreation} for the checks and their QEMU messages.
     */
    public static void createRaw(Path cwd, String filename, long size) throws IOException {
        ImageCreation.create(cwd, filename, "raw", (file, name) -> RawImage.create(file, size));
    }

    /**
     * {@code qemu-img create -f qcow2}. A size of -1 with a backing file takes the backing image's size (QEMU's
     * unspecified size); 0 is a disk of 0 bytes, as a snapshot of an empty disk makes it. Never harms an
     * existing file: an open or locked target, a directory, a FIFO or a device is refused with QEMU's message and left
     * as it was, and a new image replaces an old file only once complete (see {@link ImageCreation}).
     *
     * @return the virtual size of the new image
     */
    public static long createQcow2(Path cwd, String filename, long size, Qcow2CreateOptions o) throws IOException {
        return Qcow2Create.create(cwd, filename, size, o);
    }

    /** QEMU's "Formatting ..." line of qemu-img create for a qcow2 image. */
    public static String formattingLine(String filename, long size, Qcow2CreateOptions o) {
        if (o == null) {
            o = Qcow2CreateOptions.defaults();
        }
        StringBuilder sb = new StringBuilder();
        sb.append("Formatting '").append(filename).append("', fmt=qcow2 cluster_size=")
                .append(o.effectiveClusterSize()).append(" extended_l2=off compression_type=zlib size=").append(size);
        if (o.compat() != null) {
            sb.append(" compat=").append(o.compat());
        }
        if (o.backingFile() != null) {
            // QEMU prints option values as its option syntax needs them: a comma doubled (qemu_opts_print)
            sb.append(" backing_file=").append(o.backingFile().replace(",", ",,"));
            if (o.backingFormat() != null) {
                sb.append(" backing_fmt=").append(o.backingFormat());
            }
        }
        sb.append(" lazy_refcounts=").append(o.lazyRefcounts() ? "on" : "off");
        sb.append(" refcount_bits=").append(o.effectiveRefcountBits());
        return sb.toString();
    }

    /** QEMU's "Formatting ..." line for {@code fmt} ("raw" or "qcow2"). */
    public static String formattingLine(String filename, String fmt, long size, Qcow2CreateOptions o) {
        if ("raw".equals(fmt)) {
            return "Formatting '" + filename + "', fmt=raw size=" + size;
        }
        return formattingLine(filename, size, o);
    }
}
