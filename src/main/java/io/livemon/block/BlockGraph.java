package io.livemon.block;

import io.livemon.image.BlkdebugRules;
import io.livemon.image.Image;
import io.livemon.image.Images;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The block graph: devices (drives), the nodes under them and the jobs working on them. Both monitors call its
 * typed operations; it is the one place that knows which node is which and who holds it.
 */
public final class BlockGraph implements JobContext, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BlockGraph.class);

    private final Path cwd;
    private final EventBus events = new EventBus();
    /** Where QEMU's warn_report text goes (standard error by default; the front end may redirect it). */
    private volatile java.util.function.Consumer<String> warnings = System.err::println;

    /**
     * Guards {@link #devices}, {@link #nodes}, {@link #jobs}, {@link #blockers}, every device's root and every node's
     * backing link while they change. Never held during data I/O.
     */
    private final Object lock = new Object();
    private final Map<String, BlockDevice> devices = new LinkedHashMap<>();
    /** All nodes in creation order (the order {@code info block -n} lists them). */
    private final List<BlockNode> nodes = new ArrayList<>();
    /** Jobs by id, in creation order. */
    private final Map<String, Job> jobs = new LinkedHashMap<>();
    /** Nodes blockdev-add / -blockdev opened by name: the ones blockdev-del may close. */
    private final java.util.Set<BlockNode> monitorOwned = new java.util.HashSet<>();
    /** Which job holds which node. */
    private final Map<BlockNode, Job> blockers = new LinkedHashMap<>();
    /** Counter of QEMU's generated node names ({@code #block<counter><2 random digits>}). */
    private long nodeNameCounter;

    public BlockGraph(Path cwd) {
        this.cwd = cwd.toAbsolutePath();
    }

    /** Sends QEMU's warnings (e.g. a raw image whose format was probed) to {@code sink} instead of stderr. */
    public void setWarnings(java.util.function.Consumer<String> sink) {
        this.warnings = sink;
    }

    /**
     * QEMU's raw driver warns when the format of an image it opens writable was guessed (block/raw-format.c
     * raw_open): a {@code -drive} or a job target named without a format.
     */
    void warnProbedRaw(String file) {
        warn("WARNING: Image format was not specified for '" + file + "' and probing guessed raw.\n"
                + "         Automatically detecting the format is dangerous for raw images, write operations "
                + "on block 0 will be restricted.\n"
                + "         Specify the 'raw' format explicitly to remove the restrictions.");
    }

    /** A warning QEMU prints with warn_report, one or more lines, without a program prefix. */
    void warn(String text) {
        warnings.accept(text);
    }

    public Path cwd() {
        return cwd;
    }

    @Override
    public EventBus events() {
        return events;
    }

    // ---------------------------------------------------------------- drives

    /** Opens a {@code -drive}: the image chain, its format and protocol nodes, and the device. */
    public BlockDevice addDrive(DriveOptions o) throws BlockException {
        String file = o.file();
        if (file == null || file.isEmpty()) {
            if (o.format() != null || o.nodeName() != null || o.backingChosen()) {
                // QEMU: options for a block node, but no file to open it on
                throw BlockErrors.blockDeviceRequired("file");
            }
            // an empty drive, as -drive if=none,id=X (or media=cdrom) without a file: medium inserted later
            synchronized (lock) {
                String id = checkDriveIdFree(o);
                BlockDevice d = new BlockDevice(id, o.interfaceType(), null, o.cacheModeWords());
                devices.put(id, d);
                return d;
            }
        }
        String format = o.format();
        if (format != null && !format.equals("qcow2") && !format.equals("raw")) {
            throw BlockErrors.unknownDriver(format);
        }
        o.cacheModeWords();
        o.discardUnmap();
        o.detectZeroes();
        synchronized (lock) {
            checkDriveIdFree(o);
            checkNodeNameFree(o.nodeName());
            if (o.backingChosen()) {
                return addDriveWithChosenBacking(o);
            }
            Image top;
            try {
                top = Images.openChain(cwd, file, format, o.readOnly());
            } catch (IOException e) {
                throw BlockErrors.io(e);
            }
            BlockDevice d = addOpenedDrive(o, top);
            if (format == null && !o.readOnly() && top.format().equals("raw")) {
                warnProbedRaw(file);
            }
            return d;
        }
    }

    /**
     * A {@code -drive} whose backing the command line chooses ({@code backing=}, {@code backing.file.filename=}):
     * the image is opened alone, its backing is the named node, the chain of the given file, or none. The header is
     * not changed; QEMU shows the drive as a json: pseudo-filename when the choice is not what the header names.
     * Caller holds the lock.
     */
    private BlockDevice addDriveWithChosenBacking(DriveOptions o) throws BlockException {
        String ref = o.backingReference();
        BlockNode refNode = null;
        if (ref != null && !ref.isEmpty()) {
            refNode = findNodeLocked(ref);
            if (refNode == null || refNode.role() != BlockNode.Role.FORMAT) {
                throw BlockErrors.backingNotFound(ref);
            }
        }
        Image top;
        try {
            top = Images.open(cwd, o.file(), o.format(), true);
        } catch (IOException e) {
            throw BlockErrors.io(e);
        }
        Image chain = null;
        try {
            if (ref == null && o.backingFileOverride() != null) {
                chain = Images.openChain(cwd, o.backingFileOverride(), o.get("backing.driver"), true);
            }
            if (!o.readOnly()) {
                top.setReadOnly(false);
            }
        } catch (IOException e) {
            closeChain(chain);
            DriveOperations.closeQuietly(top);
            throw ref == null && chain == null ? BlockErrors.backingOpenFailed(e) : BlockErrors.io(e);
        }
        String header = top.backingFileString();
        top.setBacking(refNode != null ? refNode.image() : chain);
        BlockDevice d;
        if (refNode != null) {
            String id = checkDriveIdFree(o);
            BlockNode root = addFormatNode(top, o.nodeName(), true);
            root.setBacking(refNode);
            root.setGuestOptions(o.discardUnmap(), o.detectZeroes());
            d = new BlockDevice(id, o.interfaceType(), root, o.cacheModeWords());
            devices.put(id, d);
        } else {
            d = addOpenedDrive(o, top);
        }
        d.root().setAutoBackingFile(header == null ? "" : header);
        return d;
    }

    /**
     * Opens a {@code -blockdev} (or {@code blockdev-add}) node: a qcow2/raw format node over its {@code file} or
     * {@code blkdebug} protocol node, attached to no device (jobs address it by node name). Its backing is the named
     * node ({@code "backing": "node-C"}), none ({@code null}), or, when the option is absent, the backing chain the
     * image names (opened read-only with generated node names). The format node and its protocol node are listed
     * before every node that already exists, as QEMU lists them; backing nodes opened for it are listed last.
     * Returns the format node.
     */
    public BlockNode addBlockdev(BlockdevOptions o) throws BlockException {
        switch (o.driver()) {
            case "file", "blkdebug", "null-co" -> {
                return addProtocolBlockdev(o);
            }
            default -> {
            }
        }
        synchronized (lock) {
            checkNodeNameFree(o.nodeName());
            BlockdevOptions proto = o.file();
            BlockNode existing = null;
            if (proto == null) {
                existing = findNodeLocked(o.fileRef());
                if (existing == null) {
                    throw BlockErrors.cannotFind(o.fileRef(), o.fileRef());
                }
                checkAdoptable(existing);
            } else if (proto.nodeName() != null && (proto.nodeName().equals(o.nodeName())
                    || findNodeLocked(proto.nodeName()) != null)) {
                throw BlockErrors.duplicateNodeName(proto.nodeName());
            }
            BlockNode backingNode = null;
            if (o.backingInline() != null) {
                // opened first, as QEMU opens a child; it belongs to its parent, not to the monitor
                BlockdevOptions bo = o.backingInline();
                if (bo.nodeName() == null) {
                    throw BlockErrors.inlineBackingNeedsNodeName();
                }
                if (bo.nodeName().equals(o.nodeName())) {
                    throw BlockErrors.duplicateNodeName(o.nodeName());
                }
                backingNode = addBlockdev(bo);
                monitorOwned.remove(backingNode);
            }
            if (o.backing() != null) {
                if (o.backing().equals(o.nodeName())) {
                    throw BlockErrors.backingCycle(o.nodeName(), o.nodeName());
                }
                backingNode = findNodeLocked(o.backing());
                if (backingNode == null || backingNode.role() != BlockNode.Role.FORMAT) {
                    throw BlockErrors.backingNotFound(o.backing());
                }
            }
            Image image;
            try {
                image = existing != null ? adopt(existing, o) : openInline(proto, o);
            } catch (BlockException | RuntimeException e) {
                if (o.backingInline() != null) {
                    dropNodes(DriveOperations.chainOf(backingNode));
                }
                throw e;
            }
            Image chain = null;
            String b = image.backingFileString();
            if (!o.backingGiven() && b != null && !b.isEmpty()) {
                try {
                    chain = Images.openChain(cwd, Images.pathCombine(image.filename(), b),
                            image.backingFormatString(), true);
                } catch (IOException e) {
                    if (existing != null) {
                        DriveOperations.closeQuietly(image);
                        release(protocolChild(existing, image));
                    } else {
                        DriveOperations.closeQuietly(image);
                    }
                    throw BlockErrors.backingOpenFailed(e);
                }
            }
            image.setBacking(backingNode != null ? backingNode.image() : chain);
            BlockNode file;
            if (existing != null) {
                file = protocolChild(existing, image);
            } else {
                String protoName = proto.nodeName() != null ? proto.nodeName() : generateNodeName();
                file = new BlockNode(protoName, proto.nodeName() == null, BlockNode.Role.PROTOCOL, proto.driver(),
                        image, null, false);
                // QEMU lists a -blockdev's nodes before those of earlier ones (node-E first in transcript 14's graph)
                nodes.add(0, file);
            }
            BlockNode fmt = new BlockNode(o.nodeName(), false, BlockNode.Role.FORMAT, image.format(), image, file,
                    false);
            nodes.add(0, fmt);
            if (o.backingInline() != null) {
                // QEMU opens an inline backing child after its parent's protocol child: it is listed first
                BlockNode bf = backingNode.child();
                nodes.remove(backingNode);
                nodes.remove(bf);
                nodes.add(0, bf);
                nodes.add(0, backingNode);
            }
            if (chain != null) {
                backingNode = addChainNodes(chain, depth -> null);
            }
            fmt.setBacking(backingNode);
            fmt.setGuestOptions(o.discardUnmap(), o.detectZeroes());
            if (o.backingGiven()) {
                // backing given explicitly (a node, or null): QEMU takes the header's own string as what the image
                // names, and shows the node as json:{...} when that is not the backing node's name
                fmt.setAutoBackingFile(b == null ? "" : b);
            }
            monitorOwned.add(fmt);
            fmt.setFixedReadOnly(o.readOnly());
            LOG.info("blockdev {} opened on {}", o.nodeName(), image.filename());
            return fmt;
        }
    }

    /** Opens a format node's image over its inline protocol child ({@code file} or {@code blkdebug}). */
    private Image openInline(BlockdevOptions proto, BlockdevOptions o) throws BlockException {
        try {
            if (proto.driver().equals("blkdebug")) {
                return Images.openBlkdebug(cwd, proto.image().filename(), o.driver(), o.readOnly(),
                        blkdebugRules(proto));
            }
            if (!proto.driver().equals("file")) {
                throw BlockErrors.unsupportedProtocol(o.driver());
            }
            return Images.open(cwd, proto.filename(), o.driver(), o.readOnly());
        } catch (IOException e) {
            throw BlockErrors.io(e);
        }
    }

    /** A blkdebug node's rules: its config file's, then its inline ones (block/blkdebug.c blkdebug_open). */
    private BlkdebugRules blkdebugRules(BlockdevOptions dbg) throws BlockException {
        try {
            BlkdebugRules rules = dbg.config() == null ? BlkdebugRules.none() : BlkdebugRules.read(cwd, dbg.config());
            return rules.with(BlkdebugRules.fromGroups(dbg.injectErrors(), dbg.setStates()));
        } catch (IOException e) {
            throw BlockErrors.io(e);
        }
    }

    // ---------------------------------------------------------------- protocol nodes on their own

    /**
     * blkdebug nodes added on their own, by name, with their rules: they apply once a format node is opened over
     * the blkdebug node. Guarded by {@link #lock}.
     */
    private final Map<String, BlkdebugRules> standaloneRules = new java.util.HashMap<>();

    /**
     * A protocol node on its own ({@code driver: file}, {@code blkdebug} over a file node, {@code null-co}),
     * listed first as QEMU lists a new node, owned by the monitor. A file node holds its file open (and locked) as a
     * raw view until a format node is opened over it by name ({@code "file": "NODE"}); that format node then serves
     * the file, and the protocol nodes stay in the graph under it, as in QEMU.
     *
     * @throws BlockException QEMU's texts: duplicate node name, {@code Could not open 'F': ...}, the lookup error of
     *                        a blkdebug {@code image} reference
     */
    private BlockNode addProtocolBlockdev(BlockdevOptions o) throws BlockException {
        synchronized (lock) {
            checkNodeNameFree(o.nodeName());
            BlockNode n;
            switch (o.driver()) {
                case "null-co" -> n = new BlockNode(o.nodeName(), false, BlockNode.Role.PROTOCOL, "null-co",
                        new io.livemon.image.NullImage(o.nullSize(), o.readZeroes(), o.readOnly()), null, false);
                case "file" -> n = new BlockNode(o.nodeName(), false, BlockNode.Role.PROTOCOL, "file",
                        openFileNode(o.filename(), o.readOnly()), null, false);
                default -> { // blkdebug
                    BlockNode file;
                    if (o.imageRef() != null) {
                        file = findNodeLocked(o.imageRef());
                        if (file == null) {
                            throw BlockErrors.cannotFind(o.imageRef(), o.imageRef());
                        }
                        checkAdoptable(file);
                        if (!file.driver().equals("file")) {
                            throw BlockErrors.blkdebugNeedsFile();
                        }
                    } else {
                        BlockdevOptions img = o.image();
                        file = new BlockNode(img.nodeName() != null ? img.nodeName() : generateNodeName(),
                                img.nodeName() == null, BlockNode.Role.PROTOCOL, "file",
                                openFileNode(img.filename(), o.readOnly() || img.readOnly()), null, false);
                        nodes.add(0, file);
                    }
                    standaloneRules.put(o.nodeName(), blkdebugRules(o));
                    n = new BlockNode(o.nodeName(), false, BlockNode.Role.PROTOCOL, "blkdebug", file.image(), file,
                            false);
                }
            }
            nodes.add(0, n);
            monitorOwned.add(n);
            n.setFixedReadOnly(o.readOnly());
            LOG.info("blockdev {} ({}) opened", o.nodeName(), o.driver());
            return n;
        }
    }

    private Image openFileNode(String filename, boolean readOnly) throws BlockException {
        try {
            return Images.open(cwd, filename, "raw", readOnly);
        } catch (IOException e) {
            throw BlockErrors.io(e);
        }
    }

    /** A protocol node a format node may be opened over: a file or blkdebug node nothing else uses yet. */
    private void checkAdoptable(BlockNode n) throws BlockException {
        if (n.role() != BlockNode.Role.PROTOCOL || n.driver().equals("null-co")) {
            throw BlockErrors.notAdoptable(n.name(), n.driver());
        }
        if (parentNodes(n) > 0) {
            throw BlockErrors.secondNodeOver(n.name());
        }
    }

    /**
     * Opens a format node's image over protocol node {@code proto} (a file node, or a blkdebug node over one): the
     * file node's raw view is closed and the image opened on the same file, with the blkdebug node's rules.
     * Caller holds the lock and creates the protocol nodes anew with {@link #protocolChild}.
     */
    private Image adopt(BlockNode proto, BlockdevOptions o) throws BlockException {
        boolean dbg = proto.driver().equals("blkdebug");
        BlockNode file = dbg ? proto.child() : proto;
        String filename = file.image().filename();
        boolean readOnly = o.readOnly() || file.fixedReadOnly();
        DriveOperations.closeQuietly(file.image());
        try {
            return dbg ? Images.openBlkdebug(cwd, filename, o.driver(), readOnly, standaloneRules.get(proto.name()))
                    : Images.open(cwd, filename, o.driver(), readOnly);
        } catch (IOException e) {
            protocolChild(proto, openFileNode(filename, file.fixedReadOnly()));
            throw BlockErrors.io(e);
        }
    }

    /**
     * Puts new instances of protocol node {@code proto} (and of the file node under a blkdebug node) in place of the
     * old ones, serving {@code image}, and returns the new {@code proto}. Caller holds the lock.
     */
    private BlockNode protocolChild(BlockNode proto, Image image) {
        BlockNode below = proto.child() == null ? null : replaceProtocol(proto.child(), image, null);
        return replaceProtocol(proto, image, below);
    }

    private BlockNode replaceProtocol(BlockNode old, Image image, BlockNode child) {
        BlockNode n = new BlockNode(old.name(), old.autoNamed(), BlockNode.Role.PROTOCOL, old.driver(), image, child,
                false);
        n.setFixedReadOnly(old.fixedReadOnly());
        int i = nodes.indexOf(old);
        if (i >= 0) {
            nodes.set(i, n);
        }
        if (monitorOwned.remove(old)) {
            monitorOwned.add(n);
        }
        return n;
    }

    /** The format node over {@code proto} is gone: the file node holds its file again as a raw view. */
    private void release(BlockNode proto) {
        BlockNode file = proto.driver().equals("blkdebug") ? proto.child() : proto;
        try {
            protocolChild(proto, openFileNode(file.image().filename(), file.fixedReadOnly()));
        } catch (BlockException e) {
            LOG.warn("reopening {} failed", file.image().filename(), e);
        }
    }

    /** The drive's id (given or QEMU's default for its interface); fails when a drive has it already. */
    private String checkDriveIdFree(DriveOptions o) throws BlockException {
        String id = o.id() != null ? o.id() : defaultDriveId(o.interfaceType());
        if (devices.containsKey(id)) {
            throw BlockErrors.duplicateDriveId(id);
        }
        return id;
    }

    /**
     * Attaches an already opened chain as a drive described by {@code o} (its file and format options are not
     * used). Tests use it to put a fault-injecting image under a device.
     */
    BlockDevice addOpenedDrive(DriveOptions o, Image top) throws BlockException {
        String cache = o.cacheModeWords();
        synchronized (lock) {
            String id = checkDriveIdFree(o);
            BlockNode root;
            try {
                root = addChainNodes(top, depth -> depth == 0 ? o.nodeName() : o.backingNodeName(depth));
            } catch (BlockException e) {
                closeChain(top);
                throw e;
            }
            root.setGuestOptions(o.discardUnmap(), o.detectZeroes());
            int depth = 0;
            for (BlockNode n = root; n.backing() != null; n = n.backing(), depth++) {
                if (o.backingOptionsAt(depth)) {
                    // backing opened from options: QEMU keeps the header's string as auto_backing_file, so in a
                    // subdirectory ("file-B.img" vs "img/file-B.img") the node reads as overridden: a json: name,
                    // and a base found only by the backing node's exact name (fuzz/found/01, seed 4007)
                    String header = n.image().backingFileString();
                    n.setAutoBackingFile(header == null ? "" : header);
                }
            }
            BlockDevice d = new BlockDevice(id, o.interfaceType(), root, cache);
            devices.put(id, d);
            LOG.info("drive {} opened on {}", id, top.filename());
            return d;
        }
    }

    private String defaultDriveId(String ifType) {
        for (int i = 0; ; i++) {
            String id = switch (ifType) {
                case "ide" -> "ide" + (i / 2) + "-hd" + (i % 2);
                case "scsi" -> "scsi0-hd" + i;
                default -> ifType + i;
            };
            if (!devices.containsKey(id)) {
                return id;
            }
        }
    }

    private void checkNodeNameFree(String name) throws BlockException {
        if (name != null && findNodeLocked(name) != null) {
            throw BlockErrors.duplicateNodeName(name);
        }
    }

    /**
     * Adds nodes for an opened chain, bottom first (the order QEMU lists them), named by depth (0 = top; a null
     * name means a generated one). Caller holds the lock. Returns the top node.
     */
    private BlockNode addChainNodes(Image top, java.util.function.IntFunction<String> nameAtDepth)
            throws BlockException {
        List<Image> chain = new ArrayList<>();
        for (Image i = top; i != null; i = i.backing()) {
            chain.add(i);
        }
        for (int depth = 0; depth < chain.size(); depth++) {
            checkNodeNameFree(nameAtDepth.apply(depth));
        }
        BlockNode below = null;
        for (int depth = chain.size() - 1; depth >= 0; depth--) {
            BlockNode n = addFormatNode(chain.get(depth), nameAtDepth.apply(depth), true);
            n.setBacking(below);
            below = n;
        }
        return below;
    }

    /**
     * Opens, read-only, the backing chain that {@code image}'s own header names and registers its nodes: what QEMU's
     * drive-mirror with mode=existing gives the target (MIRROR_OPEN_BACKING_CHAIN), so that the device shows the
     * target's own chain after the pivot and its backing files are locked against writers meanwhile.
     *
     * @return the top node of that chain, or null when the header names no backing file
     * @throws BlockException {@code Could not open backing file: ...} with QEMU's text for the failure
     */
    BlockNode openBackingChainOf(Image image) throws BlockException {
        String b = image.backingFileString();
        if (b == null || b.isEmpty()) {
            return null;
        }
        Image chain;
        try {
            chain = Images.openChain(cwd, Images.pathCombine(image.filename(), b), image.backingFormatString(), true);
        } catch (IOException e) {
            throw BlockErrors.backingOpenFailed(e);
        }
        synchronized (lock) {
            try {
                return addChainNodes(chain, depth -> null);
            } catch (BlockException e) {
                closeChain(chain);
                throw e;
            }
        }
    }

    private static void closeChain(Image top) {
        for (Image i = top; i != null; i = i.backing()) {
            DriveOperations.closeQuietly(i);
        }
    }

    /** Adds a format node for {@code image} and its protocol node; caller holds the lock. */
    private BlockNode addFormatNode(Image image, String name, boolean withProtocolNode) throws BlockException {
        checkNodeNameFree(name);
        BlockNode file = new BlockNode(generateNodeName(), true, BlockNode.Role.PROTOCOL, "file", image, null, false);
        boolean auto = name == null;
        BlockNode fmt = new BlockNode(auto ? generateNodeName() : name, auto, BlockNode.Role.FORMAT, image.format(),
                image, file, false);
        nodes.add(fmt);
        if (withProtocolNode) {
            nodes.add(file);
        }
        return fmt;
    }

    String generateNodeName() {
        return String.format("#block%03d%02d", nodeNameCounter++, ThreadLocalRandom.current().nextInt(100));
    }

    /** Inserts a job's filter node above {@code below}; returns the filter. Caller: the job starting. */
    BlockNode insertFilter(BlockDevice device, BlockNode below, String driver, String nodeName)
            throws BlockException {
        synchronized (lock) {
            if (nodeName != null) {
                // QMP's filter-node-name: checked as a node-name (block.c bdrv_assign_node_name)
                if (!BlockdevOptions.isValidNodeName(nodeName)) {
                    throw BlockErrors.invalidNodeName(nodeName);
                }
                checkNodeNameFree(nodeName);
            }
            BlockNode f = new BlockNode(nodeName != null ? nodeName : generateNodeName(), nodeName == null,
                    BlockNode.Role.FILTER, driver, below.image(), below, true);
            nodes.add(f);
            if (device != null && device.root() == below) {
                device.setRoot(f);
            }
            return f;
        }
    }

    void removeFilter(BlockDevice device, BlockNode filter) {
        synchronized (lock) {
            nodes.remove(filter);
            if (device != null && device.root() == filter) {
                device.setRoot(filter.child());
            }
        }
    }

    /**
     * QMP blockdev-del: closes a node that blockdev-add (or -blockdev) opened and nothing uses any more, with its
     * protocol node (blockdev.c qmp_blockdev_del).
     *
     * @throws BlockException {@code Failed to find node with node-name='N'}; {@code Node N is in use} (a device's
     *                        root); QEMU's busy error (a job holds it); {@code Node N is not owned by the monitor}
     *                        (opened as part of a chain); {@code Block device N is in use} (another node's backing)
     */
    public void deleteBlockdev(String name) throws BlockException {
        BlockNode n;
        synchronized (lock) {
            n = findNodeLocked(name);
            if (n == null || n.autoNamed()) {
                throw BlockErrors.nodeNotFound(name);
            }
            for (BlockDevice d : devices.values()) {
                if (d.root() == n) {
                    throw BlockErrors.nodeInUse(name);
                }
            }
            Job j = blockers.get(n.skipFilters());
            if (j != null) {
                throw BlockErrors.busy(name, j);
            }
            if (!monitorOwned.contains(n)) {
                throw BlockErrors.notMonitorOwned(name);
            }
            if (parentNodes(n) > 0) {
                throw BlockErrors.blockDeviceInUse(name);
            }
            monitorOwned.remove(n);
            BlockNode proto = n.child();
            if (n.role() == BlockNode.Role.FORMAT && proto != null && monitorOwned.contains(proto)) {
                // opened over a protocol node by name: that node stays, holding its file again
                nodes.remove(n);
                DriveOperations.closeQuietly(n.image());
                release(proto);
                return;
            }
            if (n.role() == BlockNode.Role.PROTOCOL) {
                standaloneRules.remove(n.name());
                nodes.remove(n);
                if (n.child() == null) {
                    DriveOperations.closeQuietly(n.image()); // a blkdebug node leaves its file node open
                }
                return;
            }
        }
        // with the backing nodes opened for it (its image's chain, an inline backing) that nothing else uses
        List<BlockNode> dropped = new ArrayList<>(List.of(n));
        synchronized (lock) {
            for (BlockNode b = n.backing(); b != null && !monitorOwned.contains(b) && parents(b) == 1;
                 b = b.backing()) {
                dropped.add(b);
            }
        }
        dropNodes(dropped);
    }

    /** How many nodes and devices use {@code n} (as backing, protocol or filtered child, or root). Caller holds lock. */
    private int parents(BlockNode n) {
        int p = parentNodes(n);
        for (BlockDevice d : devices.values()) {
            if (d.root() == n) {
                p++;
            }
        }
        return p;
    }

    /**
     * QEMU's bdrv_is_root_node: no other node has {@code node} as its backing, protocol or filtered child (a device
     * may hold it). A node a job holds as its main node (a commit's top) has the job's parent in QEMU, so is no root
     * either.
     */
    boolean isRootNode(BlockNode node) {
        synchronized (lock) {
            if (node.isFilter() || blockers.get(node) != null) {
                return false;
            }
            return parentNodes(node) == 0;
        }
    }

    /** How many nodes have {@code n} as their backing, protocol or filtered child. Caller holds lock. */
    private int parentNodes(BlockNode n) {
        int p = 0;
        for (BlockNode other : nodes) {
            if (other.backing() == n || (other != n && other.child() == n)) {
                p++;
            }
        }
        return p;
    }

    /** Whether {@code -blockdev}/{@code blockdev-add} opened {@code node}: it stays open until blockdev-del. */
    boolean isMonitorOwned(BlockNode node) {
        synchronized (lock) {
            return monitorOwned.contains(node);
        }
    }

    /**
     * Removes nodes a job or a command no longer uses from the graph and closes their images, with their protocol
     * nodes. A node the monitor opened ({@code -blockdev}, {@code blockdev-add}) stays, unused, until blockdev-del:
     * the monitor's reference keeps it, as in QEMU.
     */
    void dropNodes(List<BlockNode> all) {
        List<BlockNode> dropped;
        synchronized (lock) {
            dropped = all.stream().filter(n -> !monitorOwned.contains(n)).toList();
            for (BlockNode n : dropped) {
                nodes.remove(n);
                nodes.remove(n.child());
            }
        }
        for (BlockNode n : dropped) {
            try {
                n.image().close();
            } catch (IOException e) {
                LOG.warn("closing {} failed", n.filename(), e);
            }
        }
    }

    /** Registers a new top node created by a snapshot and makes it the device's root. */
    BlockNode attachOverlay(BlockDevice device, Image overlay, String nodeName, BlockNode oldTop)
            throws BlockException {
        synchronized (lock) {
            BlockNode n = addFormatNode(overlay, nodeName, true);
            n.setBacking(oldTop);
            n.setGuestOptions(oldTop.discardUnmap(), oldTop.detectZeroes()); // QEMU's overlay inherits the flags
            if (device != null) {
                device.setRoot(n);
            }
            return n;
        }
    }

    /** Registers an opened image (a job's target) as a format node with its protocol node, under no device. */
    BlockNode addNode(Image image, String nodeName) throws BlockException {
        synchronized (lock) {
            return addFormatNode(image, nodeName, true);
        }
    }

    /** Makes {@code root} the device's root node (a mirror's pivot). */
    void setRoot(BlockDevice device, BlockNode root) {
        synchronized (lock) {
            device.setRoot(root);
        }
    }

    // ---------------------------------------------------------------- guest devices (attachments only)

    /** Guest devices by qdev id (or QOM path when given no id), in the order they were added; guarded by lock. */
    private final Map<String, String> guestDevices = new LinkedHashMap<>();
    /** Drives opened by -drive or drive_add: QEMU deletes them with the device that held them (auto_del). */
    private int anonymousDevices;

    /**
     * {@code -device} / {@code device_add} of a storage device: livemon emulates no guest, so the device is an
     * attachment that gives drive {@code drive} (may be null: a controller) its qdev id. {@code id} null gets QEMU's
     * QOM path {@code /machine/peripheral-anon/device[N]}.
     *
     * @throws BlockException {@code 'M' is not a valid device model name}; {@code Duplicate device ID 'X'};
     *                        {@code Property 'M.drive' can't find value 'D'};
     *                        {@code Drive 'D' is already in use} (another device holds it)
     */
    public String attachDevice(String model, String id, String drive) throws BlockException {
        if (!DeviceModels.known(model)) {
            throw BlockErrors.invalidDeviceModel(model);
        }
        synchronized (lock) {
            if (id != null && guestDevices.containsKey(id)) {
                throw BlockErrors.duplicateDeviceId(id);
            }
            BlockDevice d = null;
            if (drive != null) {
                d = devices.get(drive);
                if (d == null) {
                    throw BlockErrors.driveValueNotFound(model, drive);
                }
                if (d.attachedTo() != null) {
                    throw BlockErrors.driveInUseByDevice(drive);
                }
            }
            String key = id != null ? id : "/machine/peripheral-anon/device[" + anonymousDevices++ + "]";
            guestDevices.put(key, drive);
            // what QEMU names as the drive's device (blk_get_attached_dev_id): the device's id, else its QOM path;
            // virtio-blk's drive belongs to the virtio device inside the PCI proxy, which has no id of its own
            String qdev = !model.startsWith("virtio-blk") ? key
                    : (id != null ? "/machine/peripheral/" + id : key) + "/virtio-backend";
            if (d != null) {
                d.attach(qdev, false);
            }
            return key;
        }
    }

    /**
     * {@code device_del}: the device goes; a drive it held goes with it, as QEMU deletes a {@code -drive} with its
     * device (blockdev_mark_auto_del): the drive's jobs are cancelled first (not forced), then the drive is closed.
     * Returns the QOM path QEMU's DEVICE_DELETED event names.
     *
     * @throws BlockException {@code Device 'X' not found} (class DeviceNotFound)
     */
    public String detachDevice(String id) throws BlockException {
        String drive;
        synchronized (lock) {
            if (!guestDevices.containsKey(id)) {
                throw BlockErrors.deviceNotFound(id);
            }
            drive = guestDevices.remove(id);
        }
        BlockDevice d = drive == null ? null : device(drive);
        String path = id.startsWith("/") ? id : "/machine/peripheral/" + id;
        if (d != null) {
            List<Job> holding = new ArrayList<>();
            synchronized (lock) {
                for (Job j : jobs.values()) {
                    for (BlockNode n : j.blockedNodes()) {
                        if (d.root() != null && DriveOperations.chainOf(d.root()).contains(n) && !holding.contains(j)) {
                            holding.add(j);
                        }
                    }
                }
            }
            for (Job j : holding) {
                try {
                    j.cancel(false);
                } catch (BlockException e) {
                    LOG.debug("cancelling {} for device_del: {}", j.id(), e.getMessage());
                }
            }
            long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(30);
            synchronized (lock) {
                while (holding.stream().anyMatch(j -> jobs.get(j.id()) == j) && System.nanoTime() < deadline) {
                    try {
                        lock.wait(100);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        break;
                    }
                }
            }
            boolean virtio = d.attachedTo() != null && d.attachedTo().endsWith("/virtio-backend");
            d.attach(null, false);
            removeDevice(d);
            if (virtio) {
                events.publish(Event.now("DEVICE_DELETED", Job.orderedMap("path", path + "/virtio-backend")));
            }
        }
        events.publish(Event.now("DEVICE_DELETED", id.startsWith("/") ? Job.orderedMap("path", path)
                : Job.orderedMap("device", id, "path", path)));
        return path;
    }

    /** drive_del: removes the device and closes its chain. */
    void removeDevice(BlockDevice d) {
        synchronized (lock) {
            devices.remove(d.id());
        }
        removeMedium(d);
    }

    /** eject: closes the drive's chain; the drive stays, empty. */
    void removeMedium(BlockDevice d) {
        List<BlockNode> chain = DriveOperations.chainOf(d.root());
        synchronized (lock) {
            d.setRoot(null);
        }
        for (BlockNode n : chain) {
            try {
                n.image().flush();
            } catch (IOException e) {
                LOG.warn("flush of {} failed", n.filename(), e);
            }
        }
        dropNodes(chain);
    }

    /** change: opens a new chain into an empty (or emptied) drive. */
    void insertMedium(BlockDevice d, String file, String format, boolean readOnly) throws BlockException {
        Image top;
        try {
            top = Images.openChain(cwd, file, format, readOnly);
        } catch (IOException e) {
            throw BlockErrors.io(e);
        }
        if (d.root() != null) {
            removeMedium(d);
        }
        synchronized (lock) {
            d.setRoot(addChainNodes(top, depth -> null));
        }
    }

    // ---------------------------------------------------------------- lookups

    public List<BlockDevice> devices() {
        synchronized (lock) {
            return new ArrayList<>(devices.values());
        }
    }

    /** query-blockstats, per drive or per node: see {@link BlockStats#query}. */
    public List<BlockStats> blockStats(boolean queryNodes) {
        return BlockStats.query(this, queryNodes);
    }

    public List<BlockNode> nodes() {
        synchronized (lock) {
            return new ArrayList<>(nodes);
        }
    }

    public BlockDevice device(String id) {
        synchronized (lock) {
            return devices.get(id);
        }
    }

    public BlockNode findNode(String name) {
        synchronized (lock) {
            return findNodeLocked(name);
        }
    }

    private BlockNode findNodeLocked(String name) {
        for (BlockNode n : nodes) {
            if (n.name().equals(name)) {
                return n;
            }
        }
        return null;
    }

    /**
     * QEMU's bdrv_lookup_bs: by device id, then by node name.
     *
     * @throws BlockException {@code Device 'X' has no medium} (an empty drive of that id); {@code Cannot find
     *                        device=X nor node-name=Y}
     */
    public BlockNode lookupNode(String device, String nodeName) throws BlockException {
        synchronized (lock) {
            if (device != null) {
                BlockDevice d = devices.get(device);
                if (d != null && d.root() != null) {
                    return d.root();
                }
                if (d != null) {
                    // bdrv_lookup_bs: a drive of that name decides, even when empty
                    throw BlockErrors.noMedium(device);
                }
            }
            if (nodeName != null) {
                BlockNode n = findNodeLocked(nodeName);
                if (n != null) {
                    return n;
                }
            }
            throw BlockErrors.cannotFind(device, nodeName);
        }
    }

    /** The format node that has {@code node} as its backing node, or null. */
    public BlockNode overlayOf(BlockNode node) {
        synchronized (lock) {
            for (BlockNode n : nodes) {
                if (n.backing() == node) {
                    return n;
                }
            }
            return null;
        }
    }

    /** The device whose root (below filters) is {@code node}, or null. */
    public BlockDevice deviceOf(BlockNode node) {
        synchronized (lock) {
            for (BlockDevice d : devices.values()) {
                if (d.root() != null && (d.root() == node || d.root().skipFilters() == node.skipFilters())) {
                    return d;
                }
            }
            return null;
        }
    }

    /** The name QEMU uses for a node in messages: its device's id if it is a device's root, else its node name. */
    public String deviceOrNodeName(BlockNode node) {
        BlockDevice d = deviceOf(node);
        return d != null ? d.id() : node.name();
    }

    /**
     * The drains of a QEMU 7.2 transaction ({@code snapshot_blkdev}, {@code blockdev-snapshot-sync},
     * {@code drive-backup}): {@code qmp_transaction} drains all nodes, then the action drains its device's node
     * ({@code node}, null when the device was not found). Each drain lets a throttled job copy one more step
     * ({@link Job#drained}); livemon has no I/O to quiesce, so this is all a drain does here.
     */
    Drained drainForTransaction(BlockNode node) {
        Map<Job, Integer> times = new LinkedHashMap<>();
        synchronized (lock) {
            Job onNode = node == null ? null : blockers.get(node.skipFilters());
            for (Job j : jobs.values()) {
                times.put(j, j == onNode ? 2 : 1);
            }
        }
        return () -> times.forEach(Job::drained);
    }

    /** A drained section: jobs take the steps its drains owe them when it ends ({@link #drainForTransaction}). */
    @FunctionalInterface
    interface Drained extends AutoCloseable {
        @Override
        void close();
    }

    /** Fails with QEMU's busy error when a job holds {@code node}. */
    void checkNotBusy(BlockNode node) throws BlockException {
        synchronized (lock) {
            Job j = blockers.get(node.skipFilters());
            if (j != null) {
                throw BlockErrors.busy(deviceOrNodeName(node), j);
            }
        }
    }

    Job blocker(BlockNode node) {
        synchronized (lock) {
            return blockers.get(node.skipFilters());
        }
    }

    // ---------------------------------------------------------------- jobs

    /** Registers a job on its nodes and starts it. Fails if the id or a node is taken. */
    void startJob(Job job) throws BlockException {
        synchronized (lock) {
            if (jobs.containsKey(job.id())) {
                throw BlockErrors.jobIdInUse(job.id());
            }
            for (BlockNode n : job.blockedNodes()) {
                checkNotBusy(n);
            }
            jobs.put(job.id(), job);
            for (BlockNode n : job.blockedNodes()) {
                blockers.put(n, job);
            }
        }
        job.start();
    }

    /**
     * Starts a job that works behind a filter it puts above {@code below} (the device's root while it runs) and, if
     * given, a listener on the guest's writes to {@code below}; undoes both when the job cannot start. The filter is
     * the job's {@link Job#filter} before its thread starts; the job removes it when it ends.
     */
    void startJobBehindFilter(Job job, BlockDevice device, BlockNode below, String driver, String filterNodeName,
                              WriteListener listener) throws BlockException {
        BlockNode filter = insertFilter(device, below, driver, filterNodeName);
        job.filter = filter;
        if (listener != null) {
            below.addWriteListener(listener);
        }
        try {
            startJob(job);
        } catch (BlockException e) {
            if (listener != null) {
                below.removeWriteListener(listener);
            }
            removeFilter(device, filter);
            throw e;
        }
    }

    @Override
    public void jobReleasedNodes(Job job) {
        synchronized (lock) {
            blockers.values().removeIf(j -> j == job);
        }
    }

    @Override
    public void jobEnded(Job job) {
        synchronized (lock) {
            jobs.remove(job.id(), job);
            blockers.values().removeIf(j -> j == job);
            lock.notifyAll();
        }
    }

    /** The job with this id, or QEMU's "Block job 'X' not found". */
    public Job job(String id) throws BlockException {
        synchronized (lock) {
            Job j = jobs.get(id);
            if (j == null) {
                throw BlockErrors.jobNotFound(id);
            }
            return j;
        }
    }

    /** The job with this id for the {@code job-*} commands ("Job not found"). */
    public Job genericJob(String id) throws BlockException {
        synchronized (lock) {
            Job j = jobs.get(id);
            if (j == null) {
                throw BlockErrors.noSuchJob();
            }
            return j;
        }
    }

    /** Whether {@code n} is in the graph now (a job's filter leaves it when the job cleans up). */
    boolean contains(BlockNode n) {
        synchronized (lock) {
            return nodes.contains(n);
        }
    }

    /** The jobs listed now (concluded ones not yet dismissed included), oldest first. */
    List<Job> jobsNow() {
        synchronized (lock) {
            return new ArrayList<>(jobs.values());
        }
    }

    /** Every job, newest first (as {@code info block-jobs} lists them). */
    public List<JobInfo> jobInfos() {
        List<Job> list;
        synchronized (lock) {
            list = new ArrayList<>(jobs.values());
        }
        List<JobInfo> infos = new ArrayList<>();
        for (int i = list.size() - 1; i >= 0; i--) {
            infos.add(list.get(i).info());
        }
        return infos;
    }

    public boolean hasJobs() {
        synchronized (lock) {
            return !jobs.isEmpty();
        }
    }

    /** Waits until no job is left or the timeout passes; returns whether none is left. */
    public boolean awaitNoJobs(long timeoutMillis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        synchronized (lock) {
            while (!jobs.isEmpty()) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    return false;
                }
                lock.wait(left);
            }
        }
        // a job leaves the list inside its last step; once the bus is free again, that step's events are out
        events.atomically(() -> { });
        return true;
    }

    // ---------------------------------------------------------------- shutdown

    /** Dismisses every concluded job (QEMU does this at quit for jobs kept by auto-dismiss=false). */
    public void dismissConcludedJobs() {
        List<Job> all;
        synchronized (lock) {
            all = new ArrayList<>(jobs.values());
        }
        for (Job j : all) {
            if (j.status() == JobStatus.CONCLUDED) {
                try {
                    j.dismiss();
                } catch (BlockException e) {
                    LOG.debug("dismiss {}: {}", j.id(), e.getMessage());
                }
            }
        }
    }

    /** Waits until every job has ended or is concluded (waiting for a dismiss that no one will send). */
    private void awaitJobsSettled(long timeoutMillis) {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        while (System.currentTimeMillis() < deadline) {
            List<Job> all;
            synchronized (lock) {
                all = new ArrayList<>(jobs.values());
            }
            if (all.stream().allMatch(j -> j.status() == JobStatus.CONCLUDED)) {
                return;
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        LOG.warn("jobs still running after {} ms at shutdown", timeoutMillis);
    }



    /**
     * Stops every job cleanly (force-cancel, wait), dismisses concluded ones, then flushes and closes every image,
     * which clears their dirty bits.
     */
    @Override
    public void close() {
        List<Job> running;
        synchronized (lock) {
            running = new ArrayList<>(jobs.values());
        }
        for (Job j : running) {
            try {
                if (j.status() != JobStatus.CONCLUDED) {
                    j.cancel(true);
                }
            } catch (BlockException e) {
                LOG.debug("stopping job {}: {}", j.id(), e.getMessage());
            }
        }
        awaitJobsSettled(30_000);
        dismissConcludedJobs();
        List<BlockNode> all = nodes();
        for (int i = all.size() - 1; i >= 0; i--) {
            BlockNode n = all.get(i);
            if (n.role() != BlockNode.Role.FORMAT) {
                continue;
            }
            try {
                n.image().flush();
            } catch (IOException e) {
                LOG.warn("flush of {} failed", n.filename(), e);
            }
            try {
                n.image().close();
            } catch (IOException e) {
                LOG.warn("close of {} failed", n.filename(), e);
            }
        }
        synchronized (lock) {
            nodes.clear();
            devices.clear();
        }
    }
}
