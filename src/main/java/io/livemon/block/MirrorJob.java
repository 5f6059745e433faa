package io.livemon.block;

import io.livemon.image.Allocation;
import io.livemon.image.Image;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The mirror job (drive_mirror / drive-mirror): copies a drive's data into a target while a dirty bitmap tracks
 * guest writes, goes READY once in sync and keeps mirroring; complete switches the drive over to the target (pivot),
 * a non-forced cancel after READY finishes with a consistent target and no pivot.
 *
 * <p>Race rules: a region's dirty bits are cleared <em>before</em> its data is read from the source, and a guest
 * write marks its region dirty <em>after</em> it landed, so a write that overlaps a copy is always copied again. For
 * the final sync and the pivot, new guest writes are held at the gate and the ones in flight are waited for; a write
 * that was held and finds the drive switched over is retried on the target (see {@link BlockNode.Redirected}).
 */
public final class MirrorJob extends Job {
    /** Dirty bitmap granularity. */
    static final long GRANULARITY = 64 * 1024;
    /** Largest copy request. */
    static final long MAX_REQUEST = 1 << 20;

    /**
     * The arguments of drive-mirror / drive_mirror ({@code targetIsNode} false: {@code target} is a file to create
     * or reuse) and blockdev-mirror ({@code targetIsNode} true: {@code target} names a node blockdev-add opened,
     * whose backing chain stays as it is; {@code format}, {@code nodeName} and {@code reuse} do not apply).
     * Sizes in bytes, {@code speed} in bytes/s (0 = unlimited).
     */
    public record Request(String jobId, String device, String target, String format, String nodeName, String sync,
                          boolean reuse, long speed, long granularity, long bufSize, OnErrorPolicy onError,
                          OnErrorPolicy onTargetError, boolean autoFinalize, boolean autoDismiss, boolean targetIsNode) {
        /** HMP {@code drive_mirror [-n] [-f] device target [format]}. */
        public static Request hmp(String device, String target, String format, boolean reuse, boolean full) {
            return new Request(null, device, target, format, null, full ? "full" : "top", reuse, 0, 0, 0,
                    OnErrorPolicy.REPORT, OnErrorPolicy.REPORT, true, true, false);
        }
    }

    private final BlockGraph graph;
    private final BlockDevice device;
    private final BlockNode source;
    private final BlockNode targetNode;
    private final JobTarget.Sync sync;
    /** Zero the target where the source is unallocated (a reused full target without backing file). */
    private final boolean zeroTarget;
    /** The target existed (mode=existing, HMP -n) and brought its own backing chain. */
    private final boolean reuseTarget;
    /** blockdev-mirror: the target is the user's node; it stays open (and keeps its chain) whatever the outcome. */
    private final boolean targetIsNode;
    private final List<BlockNode> blocked = new ArrayList<>();

    private final BitSet dirty = new BitSet(); // guarded by itself
    private final long size;
    private int cursor;

    private final Object gate = new Object(); // guards inflight and frozen
    private int inflight;
    private boolean frozen;
    private volatile boolean pivoted;

    private final WriteListener listener = new WriteListener() {
        @Override
        public void beforeWrite(long offset, long len) throws IOException {
            synchronized (gate) {
                while (frozen) {
                    try {
                        gate.wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new InterruptedIOException("interrupted while the mirror switches over");
                    }
                }
                if (pivoted) {
                    throw new BlockNode.Redirected(); // the drive is on the target now: the write goes there
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

    private MirrorJob(BlockGraph graph, String id, BlockDevice device, BlockNode source, BlockNode targetNode,
                      JobTarget.Sync sync, boolean zeroTarget, Request r) {
        super(graph, id, JobType.MIRROR, r.speed(), r.onError(), r.onTargetError(), r.autoFinalize(), r.autoDismiss());
        this.graph = graph;
        this.device = device;
        this.source = source;
        this.targetNode = targetNode;
        this.sync = sync;
        this.zeroTarget = zeroTarget;
        this.size = source.size();
        this.reuseTarget = r.reuse();
        this.targetIsNode = r.targetIsNode();
    }

    /**
     * Validates as QEMU 7.2's qmp_drive_mirror (or qmp_blockdev_mirror), creates/opens the target, starts the job.
     * The source is a root node: a device's root or a node nothing else uses (blockdev-add).
     *
     * @throws BlockException QEMU's texts: {@code Need a root block node}, {@code Cannot find device=X nor
     *                        node-name=X}, the busy error of a job holding source or target, {@code Cannot mirror to
     *                        an attached block device}, {@code Can't mirror node into itself}, the granularity and
     *                        {@code buf-size} range errors, {@code Invalid job ID 'X'}
     */
    public static MirrorJob start(BlockGraph graph, Request r, Consumer<String> stdout) throws BlockException {
        BlockNode named = graph.lookupNode(r.device(), r.device());
        BlockDevice device = graph.deviceOf(named);
        // qmp_get_root_bs: a node below a filter, another node or a job's own parent is no root node
        if ((device != null && device.root() != named) || !graph.isRootNode(named)) {
            throw BlockErrors.needRootNode();
        }
        BlockNode source = named;
        JobTarget.Sync sync = JobTarget.Sync.fromQapi(r.sync());
        if (sync == JobTarget.Sync.TOP && source.backing() == null) {
            sync = JobTarget.Sync.FULL;
        }
        if (r.targetIsNode()) {
            return startOnNode(graph, r, device, source, sync);
        }
        if (r.nodeName() != null && graph.findNode(r.nodeName()) != null) {
            throw BlockErrors.duplicateNodeName(r.nodeName());
        }
        BlockNode backing = r.reuse() ? null : JobTarget.backingFor(source, sync);
        Image target = JobTarget.createAndOpen(graph, source, r.target(), r.format(), r.reuse(), backing, stdout);
        BlockNode targetNode = null;
        BlockNode ownChain = null;
        try {
            checkArguments(r, sync);
            String id = r.jobId() != null ? r.jobId() : JobTarget.defaultJobId(graph, source);
            JobTarget.checkJobId(id);
            graph.checkNotBusy(source);
            // A reused target keeps the backing chain its header names (QEMU: MIRROR_OPEN_BACKING_CHAIN); a created
            // one gets the source's chain (MIRROR_SOURCE_BACKING_CHAIN).
            BlockNode targetBacking = r.reuse() ? graph.openBackingChainOf(target) : JobTarget.backingFor(source, sync);
            ownChain = r.reuse() ? targetBacking : null;
            if (targetBacking != null && !target.format().equals("raw")) {
                // a raw target cannot carry a backing file (QEMU leaves it without one; the size check then decides)
                target.setBacking(targetBacking.image());
            }
            // As QEMU's drive-mirror (zero_target): a full mirror into an existing image writes zeroes wherever the
            // source reads as unallocated, also over the target's own backing file, which would show through.
            boolean zeroTarget = sync == JobTarget.Sync.FULL && r.reuse();
            targetNode = graph.addNode(target, r.nodeName());
            targetNode.setBacking(targetBacking);
            if (targetBacking != null && !r.reuse()) {
                // QEMU opens a created target without its backing file and attaches the source's chain: what it
                // takes the header to say is the string it wrote itself
                targetNode.setAutoBackingFile(targetBacking.displayName());
            }
            MirrorJob job = new MirrorJob(graph, id, device, source, targetNode, sync, zeroTarget, r);
            job.launch(device, sync, r.speed());
            return job;
        } catch (BlockException | RuntimeException e) {
            JobTarget.discard(graph, targetNode, target);
            if (ownChain != null) {
                graph.dropNodes(DriveOperations.chainOf(ownChain));
            }
            throw e;
        }
    }

    /**
     * blockdev-mirror (blockdev.c qmp_blockdev_mirror, blockdev_mirror_common): the target is an open node that no
     * device and no other node uses; its backing chain is left as it is (MIRROR_LEAVE_BACKING_CHAIN) and a full
     * mirror writes zeroes where the source reads as unallocated (zero_target).
     */
    private static MirrorJob startOnNode(BlockGraph graph, Request r, BlockDevice device, BlockNode source,
                                         JobTarget.Sync sync) throws BlockException {
        BlockNode target = graph.lookupNode(r.target(), r.target());
        graph.checkNotBusy(source);
        graph.checkNotBusy(target);
        // the op blocker QEMU puts on every backing node (block.c bdrv_set_backing_hd): a node in a chain, the
        // source's own backing above all, is never written over by a mirror (newcomer trial: data loss otherwise)
        BlockNode overlay = graph.overlayOf(target.skipFilters());
        if (overlay != null) {
            throw BlockErrors.usedAsBacking(graph.deviceOrNodeName(target), overlay.name()); // named when attached
        }
        checkArguments(r, sync);
        if (target.skipFilters() == source) {
            throw BlockErrors.mirrorIntoItself();
        }
        if (graph.deviceOf(target) != null && graph.deviceOf(target).root().skipFilters() == target.skipFilters()) {
            // QEMU starts the job and fails on the permission conflict of two writers; livemon refuses at once
            throw BlockErrors.mirrorToAttachedDevice();
        }
        if (!graph.isRootNode(target)) {
            throw BlockErrors.mirrorToUsedNode();
        }
        if (target.fixedReadOnly()) {
            // the job needs to write the target (QEMU: the permission check of mirror_start_job)
            throw BlockErrors.readOnlyNode();
        }
        String id = r.jobId() != null ? r.jobId() : JobTarget.defaultJobId(graph, source);
        JobTarget.checkJobId(id);
        MirrorJob job = new MirrorJob(graph, id, device, source, target, sync, sync == JobTarget.Sync.FULL, r);
        job.launch(device, sync, r.speed());
        return job;
    }

    /** The checks of blockdev_mirror_common and mirror_start_job, in QEMU's order after the nodes are known. */
    private static void checkArguments(Request r, JobTarget.Sync sync) throws BlockException {
        long g = r.granularity();
        if (g != 0 && (g < 512 || g > (64L << 20))) {
            throw BlockErrors.granularityOutOfRange();
        }
        if (g != 0 && Long.bitCount(g) != 1) {
            throw BlockErrors.granularityNotPowerOf2();
        }
        if (sync == JobTarget.Sync.INCREMENTAL || sync == JobTarget.Sync.BITMAP) {
            throw BlockErrors.syncModeNotSupported(sync.qapiName());
        }
        if (r.bufSize() < 0) {
            // block/mirror.c mirror_start_job: after the granularity, before the job (and its id) exists
            throw BlockErrors.invalidBufSize();
        }
    }

    /** Blocks the nodes the job uses, puts the mirror_top filter above the source and starts the job. */
    private void launch(BlockDevice device, JobTarget.Sync sync, long speed) throws BlockException {
        if (speed < 0) {
            // QEMU creates the job before it checks the speed: the job goes from created straight to null.
            discardCreated();
            throw BlockErrors.negativeSpeed();
        }
        blocked.add(source);
        if (sync == JobTarget.Sync.FULL) {
            for (BlockNode n = source.backing(); n != null; n = n.backing()) {
                blocked.add(n);
            }
        }
        blocked.add(targetNode);
        graph.startJobBehindFilter(this, device, source, "mirror_top", null, listener);
    }

    @Override
    public List<BlockNode> blockedNodes() {
        return blocked;
    }

    /** The node that became the drive's root on completion (tests). */
    BlockNode targetNode() {
        return targetNode;
    }

    // ---------------------------------------------------------------- dirty bitmap

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
                n -= (last + 1) * GRANULARITY - size; // the last cluster is partial
            }
            return n;
        }
    }

    /**
     * Takes the next run of dirty clusters (at most MAX_REQUEST, then widened to whole {@code align}-byte clusters)
     * and clears it; null when nothing is dirty.
     */
    private long[] takeDirtyRun(long align) {
        synchronized (dirty) {
            int c = dirty.nextSetBit(cursor);
            if (c < 0) {
                c = dirty.nextSetBit(0);
                if (c < 0) {
                    return null;
                }
            }
            int end = Math.min(dirty.nextClearBit(c), c + (int) (MAX_REQUEST / GRANULARITY));
            if (align > GRANULARITY) {
                int per = (int) (align / GRANULARITY);
                c = c / per * per;
                end = (int) Math.min((size + GRANULARITY - 1) / GRANULARITY, ((long) end + per - 1) / per * per);
            }
            dirty.clear(c, end);
            cursor = end;
            long start = c * GRANULARITY;
            return new long[] {start, Math.min(size, end * GRANULARITY) - start};
        }
    }

    // ---------------------------------------------------------------- copying

    private void copy(long offset, long len, byte[] buf) throws IOException {
        source.image().read(offset, buf, 0, (int) len);
        targetNode.image().write(offset, buf, 0, (int) len);
    }

    /** Marks what the sync mode copies initially. */
    private void dirtyInit() throws IOException {
        Image src = source.image();
        Image base = sync == JobTarget.Sync.TOP && source.backing() != null ? source.backing().image() : null;
        long pos = 0;
        while (pos < size) {
            Allocation a = src.isAllocatedAbove(pos, size - pos, base);
            long n = Math.max(1, Math.min(a.length(), size - pos));
            if (a.allocated()) {
                markDirty(pos, n);
            } else if (zeroTarget) {
                targetNode.image().writeZeroes(pos, n);
            }
            pos += n;
        }
    }

    @Override
    protected void run() throws Exception {
        // As QEMU 7.2's mirror_run: an existing target of another size fails the job before anything is copied; the
        // target is left as it was and the device stays on its image.
        // (QEMU compares lengths in whole 512-byte sectors: bdrv_getlength rounds up)
        if (((targetNode.image().size() + 511) >>> 9) != ((size + 511) >>> 9)) {
            throw BlockErrors.differentSizes();
        }
        cow = copyOnWriteCluster();
        byte[] buf = new byte[bufferSize()];
        if (sync != JobTarget.Sync.NONE) {
            dirtyInit();
        }
        long done = 0;
        boolean ready = false;
        while (true) {
            pausePoint();
            long[] run = takeDirtyRun(cow);
            if (run != null) {
                boolean reading = true;
                try {
                    source.image().read(run[0], buf, 0, (int) run[1]);
                    reading = false;
                    targetNode.image().write(run[0], buf, 0, (int) run[1]);
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

    /**
     * The unit the mirror copies in: the target's cluster size when a target created or reused by drive-mirror names
     * a backing file and has clusters larger than the granularity, else the granularity. QEMU opens such a target
     * without its backing file, so a partly written cluster would not be filled from it: the mirror reads the whole
     * cluster from the source instead (block/mirror.c mirror_run's cow_bitmap and mirror_cow_align), which is also
     * what a read error of the source shows (iotests 041 TestReadErrors.test_large_cluster). livemon widens every
     * request, where QEMU stops once a cluster has been written whole; the data copied is the same.
     */
    /** Set by the job thread before it copies (see {@link #copyOnWriteCluster()}); read by the same thread. */
    private long cow = GRANULARITY;

    /** The copy buffer: the largest run plus the widening on both sides. */
    private int bufferSize() {
        return (int) (cow > GRANULARITY ? MAX_REQUEST + 2 * cow : MAX_REQUEST);
    }

    private long copyOnWriteCluster() throws IOException {
        Image t = targetNode.image();
        String backingString = t.backingFileString();
        if (targetIsNode || backingString == null || backingString.isEmpty()) {
            return GRANULARITY;
        }
        return Math.max(GRANULARITY, t.info().clusterSize());
    }

    /** Holds new guest writes and waits for those in flight. */
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

    /** Final sync with guest writes held, then (on complete) the switch-over. */
    @Override
    protected void prepare() throws IOException {
        freeze();
        try {
            byte[] buf = new byte[bufferSize()];
            long done = info().offset();
            for (long[] run = takeDirtyRun(cow); run != null; run = takeDirtyRun(cow)) {
                copy(run[0], run[1], buf);
                done += run[1];
            }
            setOffset(done);
            setLen(done);
            targetNode.image().flush();
            if (completeRequested()) {
                if (device != null) {
                    graph.setRoot(device, targetNode);
                }
                pivoted = true;
                source.setReplacedBy(targetNode);
            }
        } finally {
            thaw();
        }
    }

    /**
     * After a pivot the source's chain is closed down to the first node something else still holds (the target's
     * backing, a node the monitor opened); a target no device took over (the source was a device-less node) is
     * closed too unless the user opened it. Without a pivot only a target the job opened is closed.
     */
    @Override
    protected void clean() {
        graph.removeFilter(device, filter);
        source.removeWriteListener(listener);
        List<BlockNode> dropped = new ArrayList<>();
        if (pivoted) {
            awaitNoWriters();
            if (sync != JobTarget.Sync.NONE || targetIsNode) {
                java.util.Set<BlockNode> kept = new java.util.HashSet<>(DriveOperations.chainOf(targetNode));
                for (BlockNode n = source; n != null && !kept.contains(n) && !graph.isMonitorOwned(n);
                     n = n.backing()) {
                    dropped.add(n);
                }
            }
            if (device == null && !targetIsNode) {
                dropped.addAll(reuseTarget ? DriveOperations.chainOf(targetNode) : List.of(targetNode));
            }
        } else if (!targetIsNode) {
            // the target, and the chain it brought when it was reused (a created one shares the source's)
            dropped.addAll(reuseTarget ? DriveOperations.chainOf(targetNode) : List.of(targetNode));
        }
        graph.dropNodes(dropped);
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
}
