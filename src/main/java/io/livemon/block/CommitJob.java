package io.livemon.block;

import io.livemon.image.Allocation;
import io.livemon.image.Image;
import io.livemon.image.Images;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The commit job (QMP {@code block-commit}), type {@code commit}, in QEMU 7.2's two forms:
 * <ul>
 * <li><b>Intermediate commit</b> (top below the active layer): copies the data allocated in top…above-base into base
 * in chunks of 512 KiB and finishes on its own. On success the overlay of top gets base as its backing file (header
 * string: base's file name as opened, or {@code backing-file}) and top…above-base leave the graph (files untouched).
 * Base is reopened read-write for the job and read-only again afterwards; progress len is the virtual size.</li>
 * <li><b>Active commit</b> (top = the active layer): a mirror from the active layer into base (only what is allocated
 * above base, plus guest writes tracked by a dirty bitmap), READY once in sync; complete switches the drive's root to
 * base and drops the nodes above it, a non-forced cancel after READY finishes without the switch.</li>
 * </ul>
 * The race rules of the active form are {@link MirrorJob}'s: dirty bits are cleared before a region is read, guest
 * writes mark their region after they landed, and the switch-over happens with guest writes held at the gate.
 */
public final class CommitJob extends Job {
    /** Unit of work of the intermediate commit, as QEMU's COMMIT_BUFFER_SIZE. */
    static final long CHUNK = 512 * 1024;
    /** Dirty bitmap granularity of the active commit. */
    static final long GRANULARITY = 64 * 1024;
    /** Largest copy request of the active commit. */
    static final long MAX_REQUEST = 1 << 20;

    /** The arguments of block-commit. */
    public record Request(String jobId, String device, String baseNode, String base, String topNode, String top,
                          String backingFile, long speed, OnErrorPolicy onError, boolean autoFinalize,
                          boolean autoDismiss, String filterNodeName) {
        /** A request whose filter (commit_top or mirror_top) gets a generated node name. */
        public Request(String jobId, String device, String baseNode, String base, String topNode, String top,
                       String backingFile, long speed, OnErrorPolicy onError, boolean autoFinalize,
                       boolean autoDismiss) {
            this(jobId, device, baseNode, base, topNode, top, backingFile, speed, onError, autoFinalize, autoDismiss,
                    null);
        }
    }

    private final BlockGraph graph;
    private final BlockDevice device;
    /** The node the device argument named (the active layer). */
    private final BlockNode active;
    private final BlockNode top;
    private final BlockNode base;
    /** Intermediate commit: the node whose backing is top (it gets base as backing); null for active commit. */
    private final BlockNode overlay;
    /** Nodes that leave the graph on success: top…above-base (intermediate), active…above-base (active). */
    private final List<BlockNode> dropped;
    /** The backing string written into the overlay's header (one that leads to base). */
    private final String backingFileString;
    /** The string QEMU 7.2 would have written (the overlay's auto_backing_file afterwards). */
    private String qemuBackingString;
    private final boolean baseWasReadOnly;
    private final boolean activeCommit;
    private final List<BlockNode> blocked = new ArrayList<>();

    // ---------------------------------------------------------------- active commit state (as MirrorJob)
    private final BitSet dirty = new BitSet(); // guarded by itself
    private final long size;
    private int cursor;
    private final Object gate = new Object(); // guards inflight and frozen
    private int inflight;
    private boolean frozen;
    private volatile boolean pivoted;
    private volatile boolean aborted;

    private final WriteListener listener = new WriteListener() {
        @Override
        public void beforeWrite(long offset, long len) throws IOException {
            synchronized (gate) {
                while (frozen) {
                    try {
                        gate.wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new InterruptedIOException("interrupted while the commit switches over");
                    }
                }
                if (pivoted) {
                    throw new BlockNode.Redirected(); // the drive is on base now: the write goes there
                }
                inflight++;
            }
        }

        @Override
        public void afterWrite(long offset, long len) {
            try {
                markDirty(offset, len);
            } finally {
                synchronized (gate) {
                    inflight--;
                    gate.notifyAll();
                }
            }
        }
    };

    private CommitJob(BlockGraph graph, String id, BlockDevice device, BlockNode active, BlockNode top,
                      BlockNode base, BlockNode overlay, List<BlockNode> dropped, String backingFileString,
                      Request r) {
        super(graph, id, JobType.COMMIT, r.speed(), r.onError(), r.autoFinalize(), r.autoDismiss());
        this.graph = graph;
        this.device = device;
        this.active = active;
        this.top = top;
        this.base = base;
        this.overlay = overlay;
        this.dropped = dropped;
        this.backingFileString = backingFileString;
        this.baseWasReadOnly = base.readOnly();
        this.activeCommit = overlay == null;
        this.size = top.size();
    }

    /** Validates the request in the order of QEMU 7.2's qmp_block_commit, then starts the job. */
    public static CommitJob start(BlockGraph graph, Request r) throws BlockException {
        BlockNode bs = rootNode(graph, r.device());

        BlockNode top = bs;
        if (r.topNode() != null && r.top() != null) {
            throw BlockErrors.mutuallyExclusive("top-node", "top");
        } else if (r.topNode() != null) {
            top = graph.findNode(r.topNode());
            if (top == null) {
                throw BlockErrors.cannotFind("", r.topNode());
            }
            if (!chainContains(bs, top)) {
                throw BlockErrors.notInThisChain(r.topNode());
            }
        } else if (r.top() != null && !bs.filename().equals(r.top())) {
            top = BackingNames.findBackingImage(graph, bs, r.top());
            if (top == null) {
                throw BlockErrors.topNotFound(r.top());
            }
        }

        BlockNode base;
        if (r.baseNode() != null && r.base() != null) {
            throw BlockErrors.mutuallyExclusive("base-node", "base");
        } else if (r.baseNode() != null) {
            base = graph.findNode(r.baseNode());
            if (base == null) {
                throw BlockErrors.cannotFind("", r.baseNode());
            }
            if (!chainContains(top, base)) {
                throw BlockErrors.notInThisChain(r.baseNode());
            }
        } else if (r.base() != null) {
            base = BackingNames.findBackingImage(graph, top, r.base());
            if (base == null) {
                throw BlockErrors.notInBackingChain(r.base());
            }
        } else {
            base = top;
            while (base.backing() != null) {
                base = base.backing();
            }
        }

        // blockdev.c qmp_block_commit: the op blockers of top down to base (inclusive) only; a node below the
        // base may be another job's (a stream further down runs in parallel).
        for (BlockNode n = top; n != null; n = n == base ? null : n.backing()) {
            checkNotBusy(graph, n, bs);
        }
        if (top == base) {
            throw BlockErrors.commitIntoItself();
        }

        BlockDevice device = graph.deviceOf(bs);
        boolean activeCommit = top == bs;
        BlockNode overlay = null;
        if (activeCommit) {
            if (r.backingFile() != null) {
                throw BlockErrors.backingFileForActiveLayer();
            }
        } else {
            overlay = graph.overlayOf(top);
            if (overlay == null) {
                throw BlockErrors.overlayNotFound(top.filename());
            }
            checkNotBusy(graph, overlay, bs);
        }
        String id = r.jobId() != null ? r.jobId() : JobTarget.defaultJobId(graph, bs);
        JobTarget.checkJobId(id);

        List<BlockNode> dropped = new ArrayList<>();
        for (BlockNode n = top; n != base; n = n.backing()) {
            dropped.add(n);
        }
        // As for stream: QEMU's string is kept for display, the string written leads to base from the overlay.
        String qemuString = r.backingFile() != null ? r.backingFile() : base.filename();
        String diskString = overlay == null ? qemuString
                : BackingNames.forOverlay(graph, overlay, qemuString, r.backingFile() != null, base);
        CommitJob job = new CommitJob(graph, id, device, bs, top, base, overlay, dropped, diskString, r);
        job.qemuBackingString = qemuString;
        if (r.speed() < 0) {
            // QEMU creates the job before it checks the speed: the job goes from created straight to null.
            job.discardCreated();
            throw BlockErrors.negativeSpeed();
        }
        // QEMU blocks the device's node (the job's main node), top…above-base and base (block/commit.c
        // commit_start). The overlay of top is not blocked: its link to the commit_top filter can never be frozen,
        // which keeps a stream across it out (StreamJob, "Cannot freeze 'backing' link").
        job.blocked.add(bs);
        for (BlockNode n : dropped) {
            if (!job.blocked.contains(n)) {
                job.blocked.add(n);
            }
        }
        job.blocked.add(base);
        if (!activeCommit) {
            job.setLen(top.size()); // "Completed 0 of <virtual size>" from the start
        }
        try {
            if (base.readOnly()) {
                base.image().setReadOnly(false);
            }
        } catch (IOException e) {
            throw BlockErrors.ioOrEio(e);
        }
        try {
            if (activeCommit) {
                graph.startJobBehindFilter(job, device, bs, "mirror_top", r.filterNodeName(), job.listener);
            } else {
                // the commit_top filter sits above top (listed in info block -n); the device's root is unchanged
                graph.startJobBehindFilter(job, null, top, "commit_top", r.filterNodeName(), null);
            }
        } catch (BlockException e) {
            job.restoreBaseReadOnly();
            throw e;
        }
        return job;
    }

    /**
     * QEMU's qmp_get_root_bs for block-commit: the device's (or named node's) root node; unknown names are
     * DeviceNotFound, nodes with a parent (an overlay, a filter, a job) "Need a root block node".
     */
    private static BlockNode rootNode(BlockGraph graph, String name) throws BlockException {
        BlockDevice d = graph.device(name);
        BlockNode n = d != null && d.root() != null ? d.root() : graph.findNode(name);
        if (n == null) {
            throw BlockErrors.deviceNotFound(name);
        }
        if (n.isFilter() || n.role() != BlockNode.Role.FORMAT || graph.overlayOf(n) != null
                || graph.blocker(n) != null) {
            throw BlockErrors.needRootNode();
        }
        return n;
    }

    private static boolean chainContains(BlockNode top, BlockNode candidate) {
        for (BlockNode n = top; n != null; n = n.backing()) {
            if (n == candidate) {
                return true;
            }
        }
        return false;
    }

    /**
     * QEMU's busy error for a node of the chain; a node under a job's filter (an intermediate stream target) is
     * reported by the filter's name, the first node QEMU meets walking down the chain.
     */
    static void checkNotBusy(BlockGraph graph, BlockNode n, BlockNode bs) throws BlockException {
        Job j = graph.blocker(n);
        if (j == null) {
            return;
        }
        // only a stream's copy-on-read filter is itself blocked (QEMU meets it first); an intermediate commit's
        // commit_top is not, so QEMU names the node under it
        BlockNode f = j.filter;
        String name = f != null && f.child() == n && n != bs && graph.deviceOf(n) == null
                && j.blocksItsFilter() ? f.name() : graph.deviceOrNodeName(n);
        throw BlockErrors.busy(name, j);
    }

    /**
     * The commit_top filter between {@code overlay} and its backing node when an intermediate commit runs under it
     * (the filter's link can never be frozen), else null.
     */
    static BlockNode unfreezableFilterBelow(BlockGraph graph, BlockNode overlay) {
        for (Job j : graph.jobsNow()) {
            if (j instanceof CommitJob c && !c.activeCommit && c.overlay == overlay && j.filter != null
                    && graph.contains(j.filter)) {
                return j.filter;
            }
        }
        return null;
    }

    @Override
    public List<BlockNode> blockedNodes() {
        return blocked;
    }

    /** Whether this is an active commit (READY phase, switch-over). */
    public boolean isActive() {
        return activeCommit;
    }

    @Override
    protected boolean hasStepHeads() {
        return !activeCommit; // the active phase is a mirror, whose sleeps a drain only cuts short
    }

    @Override
    protected void run() throws Exception {
        if (activeCommit) {
            runActive();
        } else {
            runIntermediate();
        }
    }

    // ---------------------------------------------------------------- intermediate commit

    private void runIntermediate() throws Exception {
        Image topImage = top.image();
        Image baseImage = base.image();
        long len = topImage.size();
        setLen(len);
        if (baseImage.size() < len) {
            baseImage.resize(len); // as QEMU's commit_run: base grows to top's size
        }
        byte[] buf = new byte[(int) CHUNK];
        long offset = 0;
        long owed = 0; // bytes the last step copied: QEMU's commit_run pays for them at the head of the next step
        while (offset < len) {
            stepHead(owed);
            owed = 0;
            // QEMU's commit_run steps: at most 512 KiB, cut where QEMU's block status answers end
            long n = Math.min(CHUNK, len - offset);
            Allocation a = Images.isAllocatedAbove(topImage, offset, n, baseImage, true);
            n = Math.max(1, Math.min(a.length(), n));
            if (a.allocated()) {
                boolean reading = true;
                try {
                    topImage.read(offset, buf, 0, (int) n);
                    reading = false;
                    baseImage.write(offset, buf, 0, (int) n);
                } catch (IOException e) {
                    // block/commit.c commit_run: report ends the job; ignore and stop both retry the same step (a
                    // stopped job once resumed), so an ignored error leaves no error behind
                    if (ioError(e, reading) == ErrorAction.REPORT) {
                        throw new IOException(IoErrors.strerror(e), e);
                    }
                    continue;
                }
            }
            offset += n;
            setOffset(offset);
            if (a.allocated()) {
                owed = n;
            }
        }
    }

    // ---------------------------------------------------------------- active commit (a mirror into base)

    private void markDirty(long offset, long len) {
        if (len <= 0 || offset >= size) {
            return;
        }
        long end = Math.min(size, offset + len);
        synchronized (dirty) {
            dirty.set((int) (offset / GRANULARITY), (int) ((end - 1) / GRANULARITY) + 1);
        }
    }

    private long dirtyBytes() {
        synchronized (dirty) {
            long n = (long) dirty.cardinality() * GRANULARITY;
            int last = dirty.length() - 1;
            if (last >= 0 && (last + 1) * GRANULARITY > size) {
                n -= (last + 1) * GRANULARITY - size;
            }
            return n;
        }
    }

    private long[] takeDirtyRun() {
        synchronized (dirty) {
            int c = dirty.nextSetBit(cursor);
            if (c < 0) {
                c = dirty.nextSetBit(0);
                if (c < 0) {
                    return null;
                }
            }
            int end = Math.min(dirty.nextClearBit(c), c + (int) (MAX_REQUEST / GRANULARITY));
            dirty.clear(c, end);
            cursor = end;
            long start = c * GRANULARITY;
            return new long[] {start, Math.min(size, end * GRANULARITY) - start};
        }
    }

    /** Marks what is allocated above base in the active layer's chain. */
    private void dirtyInit() throws IOException {
        Image src = top.image();
        Image baseImage = base.image();
        long pos = 0;
        while (pos < size) {
            Allocation a = src.isAllocatedAbove(pos, size - pos, baseImage);
            long n = Math.max(1, Math.min(a.length(), size - pos));
            if (a.allocated()) {
                markDirty(pos, n);
            }
            pos += n;
        }
    }

    private void runActive() throws Exception {
        if (base.image().size() < size) {
            base.image().resize(size);
        }
        byte[] buf = new byte[(int) MAX_REQUEST];
        dirtyInit();
        setLen(dirtyBytes());
        long done = 0;
        boolean ready = false;
        while (true) {
            pausePoint();
            long[] run = takeDirtyRun();
            if (run != null) {
                boolean reading = true;
                try {
                    top.image().read(run[0], buf, 0, (int) run[1]);
                    reading = false;
                    base.image().write(run[0], buf, 0, (int) run[1]);
                } catch (IOException e) {
                    markDirty(run[0], run[1]);
                    ErrorAction action = ioError(e, reading);
                    if (action == ErrorAction.REPORT) {
                        throw e;
                    }
                    continue;
                }
                done += run[1];
                setOffset(done);
                setLen(done + dirtyBytes());
                rateLimit(run[1]);
                continue;
            }
            setLen(done);
            if (!ready) {
                ready = true;
                becomeReady();
            }
            if (completeRequested() || cancelledWhileReady()) {
                return;
            }
            waitForVerb(20, TimeUnit.MILLISECONDS);
        }
    }

    private void freeze() throws InterruptedIOException {
        synchronized (gate) {
            frozen = true;
            while (inflight > 0) {
                try {
                    gate.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException();
                }
            }
        }
    }

    private void thaw() {
        synchronized (gate) {
            frozen = false;
            gate.notifyAll();
        }
    }

    // ---------------------------------------------------------------- completion

    @Override
    protected void prepare() throws IOException {
        if (activeCommit) {
            prepareActive();
        } else {
            prepareIntermediate();
        }
    }

    private void prepareIntermediate() throws IOException {
        base.image().flush();
        Image o = overlay.image();
        boolean overlayWasReadOnly = o.isReadOnly();
        if (overlayWasReadOnly) {
            o.setReadOnly(false);
        }
        try {
            o.changeBackingFile(base.image(), backingFileString, base.image().format());
            o.flush();
        } finally {
            if (overlayWasReadOnly) {
                o.setReadOnly(true);
            }
        }
        overlay.setBacking(base);
        overlay.setAutoBackingFile(qemuBackingString);
        graph.dropNodes(dropped);
    }

    /** Final sync with guest writes held, then (on complete) the switch-over to base. */
    private void prepareActive() throws IOException {
        freeze();
        try {
            byte[] buf = new byte[(int) MAX_REQUEST];
            long done = info().offset();
            for (long[] run = takeDirtyRun(); run != null; run = takeDirtyRun()) {
                top.image().read(run[0], buf, 0, (int) run[1]);
                base.image().write(run[0], buf, 0, (int) run[1]);
                done += run[1];
            }
            setOffset(done);
            setLen(done);
            base.image().flush();
            if (completeRequested()) {
                if (device != null) {
                    graph.setRoot(device, base); // a device-less top (blockdev-add) has no parent to move
                }
                pivoted = true;
                top.setReplacedBy(base);
            }
        } finally {
            thaw();
        }
    }

    @Override
    protected void abort() {
        aborted = true;
    }

    @Override
    protected boolean releasesNodesWhenClean(boolean aborted) {
        return activeCommit || aborted; // see Job: the mirror driver always, block/commit.c on abort only
    }

    @Override
    protected void clean() {
        graph.removeFilter(device, filter);
        if (activeCommit) {
            if (pivoted) {
                awaitNoWriters();
            }
            top.removeWriteListener(listener);
            if (pivoted) {
                graph.dropNodes(dropped);
            } else if (aborted) {
                // as QEMU's mirror_exit_common: base is read-only again after an abort; after a non-forced cancel
                // when ready (a successful end without the switch-over) it stays read-write
                restoreBaseReadOnly();
            }
        } else {
            restoreBaseReadOnly();
        }
    }

    private void restoreBaseReadOnly() {
        if (baseWasReadOnly && !base.readOnly()) {
            try {
                base.image().flush();
                base.image().setReadOnly(true);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private void awaitNoWriters() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        synchronized (gate) {
            while (inflight > 0 && System.nanoTime() < deadline) {
                try {
                    gate.wait(100);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    /** The node the commit writes into (tests). */
    BlockNode baseNode() {
        return base;
    }

    /** The node the device argument named (tests). */
    BlockNode activeNode() {
        return active;
    }
}
