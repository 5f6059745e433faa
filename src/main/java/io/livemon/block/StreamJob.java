package io.livemon.block;

import io.livemon.image.Allocation;
import io.livemon.image.BlockStatus;
import io.livemon.image.CopyUpInterrupted;
import io.livemon.image.Image;
import io.livemon.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The stream job: copies into a node the data its backing chain holds above a base, then makes the base its backing
 * file. Works in chunks of 512 KiB, copying only what is allocated above the base and missing from the target.
 */
public final class StreamJob extends Job {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(StreamJob.class);
    /** Largest unit of work between pause points, as QEMU's stream. */
    static final long CHUNK = 512 * 1024;
    /** Unit of work without a speed limit. */
    static final long UNTHROTTLED_CHUNK = 8L << 20;
    private static final Pattern JOB_ID = Pattern.compile("[A-Za-z][A-Za-z0-9_.\\-]*");

    private final BlockGraph graph;
    private final BlockDevice device;
    private final BlockNode target;
    /** Base node (kept), or null: stream the whole chain. */
    private final BlockNode base;
    /** The backing string written into the target's header (one that leads to the base). */
    private final String backingFileString;
    /** The string QEMU 7.2 would have written (its auto_backing_file afterwards), or null without a base. */
    private String qemuBackingString;
    /** Nodes between target and base; they leave the graph on success. */
    private final List<BlockNode> intermediates;
    private final boolean targetWasReadOnly;

    private StreamJob(BlockGraph graph, String id, BlockDevice device, BlockNode target, BlockNode base,
                      String backingFileString, List<BlockNode> intermediates, StreamRequest r) {
        super(graph, id, JobType.STREAM, r.speed(), r.onError(), r.autoFinalize(), r.autoDismiss());
        this.graph = graph;
        this.device = device;
        this.target = target;
        this.base = base;
        this.backingFileString = backingFileString;
        this.intermediates = intermediates;
        this.targetWasReadOnly = target.readOnly();
    }

    /**
     * Validates the request as QEMU 7.2's qmp_block_stream does, in its order, then starts the job. With
     * {@code bottom}, the node below it is the base, and (as QEMU's base is then the node below bottom, whatever it
     * is) a filter another job put there is not this job's concern.
     */
    public static StreamJob start(BlockGraph graph, StreamRequest r) throws BlockException {
        if (r.base() != null && r.baseNode() != null) {
            throw BlockErrors.cannotSpecifyBoth("base", "base-node");
        }
        if (r.base() != null && r.bottom() != null) {
            throw BlockErrors.cannotSpecifyBoth("base", "bottom");
        }
        if (r.bottom() != null && r.baseNode() != null) {
            throw BlockErrors.cannotSpecifyBoth("bottom", "base-node");
        }
        BlockNode named = graph.lookupNode(r.device(), r.device());
        BlockNode target = named.skipFilters();
        BlockDevice device = graph.deviceOf(target);
        BlockNode base = null;
        if (r.base() != null) {
            base = BackingNames.findBackingImage(graph, target, r.base());
            if (base == null) {
                throw BlockErrors.notInBackingChain(r.base());
            }
        } else if (r.baseNode() != null) {
            base = graph.findNode(r.baseNode());
            if (base == null) {
                throw BlockErrors.cannotFind("", r.baseNode());
            }
            if (!isBelow(target, base)) {
                throw BlockErrors.notBackingImageOf(r.baseNode(), target.name());
            }
        }
        if (r.bottom() != null) {
            BlockNode bottom = graph.lookupNode(null, r.bottom());
            if (bottom.isFilter()) {
                throw BlockErrors.bottomIsFilter(r.bottom());
            }
            if (bottom != target && !isBelow(target, bottom)) {
                throw BlockErrors.bottomNotInChain(r.bottom(), r.device());
            }
            base = bottom.backing();
        }
        if (named.isFilter() && named.driver().equals("mirror_top")) {
            // A mirror's filter sits at the device's root; QEMU refuses after looking up the base (a bad base name
            // is reported first) and before looking at what holds the nodes.
            throw BlockErrors.needRootNode();
        }
        if (r.backingFile() != null && (base == null || r.bottom() != null)) {
            // with bottom, QEMU passes no base node on, so a backing file is refused as for the whole chain
            throw BlockErrors.backingFileForWholeChain();
        }
        String id = r.jobId();
        if (id == null) {
            id = device != null && device.root().skipFilters() == target ? device.id() : "";
        }
        if (!JOB_ID.matcher(id).matches()) {
            throw BlockErrors.invalidJobId(id);
        }
        // QEMU 7.2 (blockdev.c qmp_block_stream) checks the op blockers of every node from the target down to the
        // base, the base excluded; a filter another stream put above a node is met (and reported) before the node.
        CommitJob.checkNotBusy(graph, target, target);
        List<BlockNode> intermediates = new ArrayList<>();
        for (BlockNode n = target.backing(); n != null && n != base; n = n.backing()) {
            CommitJob.checkNotBusy(graph, n, target);
            intermediates.add(n);
        }
        if (base != null && r.bottom() == null) {
            // the base itself is free to be another job's, but a stream filter above it lies between base and top
            Job j = graph.blocker(base);
            if (j != null && j.filter != null && j.filter.child() == base && graph.deviceOf(base) == null
                    && j.blocksItsFilter()) {
                throw BlockErrors.busy(j.filter.name(), j);
            }
        }
        // stream_start freezes the chain from the target down to the base; an intermediate commit's filter in it
        // refuses (block.c bdrv_freeze_backing_chain)
        for (BlockNode n = target; n != null && n != base; n = n.backing()) {
            BlockNode unfreezable = CommitJob.unfreezableFilterBelow(graph, n);
            if (unfreezable != null && n.backing() != null) {
                throw BlockErrors.cannotFreezeLink(unfreezable.name());
            }
        }
        if (target.fixedReadOnly()) {
            // stream_start reopens the target read-write, which a node opened read-only by blockdev-add refuses
            throw BlockErrors.readOnlyNode();
        }
        // QEMU writes the base's file name as opened (or backing-file); livemon writes a string that leads to the
        // base from the target's own directory and keeps QEMU's string for what QEMU shows (BackingNames).
        String qemuString = r.backingFile() != null ? r.backingFile() : base != null ? base.filename() : null;
        String diskString = qemuString;
        if (base != null) {
            diskString = BackingNames.forOverlay(graph, target, qemuString, r.backingFile() != null, base);
        }
        StreamJob job = new StreamJob(graph, id, device, target, base, diskString, intermediates, r);
        job.qemuBackingString = qemuString;
        if (r.speed() < 0) {
            // QEMU creates the job before it checks the speed: the job goes from created straight to null.
            job.discardCreated();
            throw BlockErrors.negativeSpeed();
        }
        if (!intermediates.isEmpty()) {
            job.setLen(target.size()); // QEMU reports len = virtual size from the start ("Completed 0 of <size>")
        }
        try {
            if (target.readOnly()) {
                target.image().setReadOnly(false);
            }
        } catch (IOException e) {
            throw BlockErrors.ioOrEio(e);
        }
        try {
            graph.startJobBehindFilter(job, device, target, "copy-on-read", r.filterNodeName(), null);
            job.filter.setCopyOnRead(base == null ? null : base.image());
        } catch (BlockException e) {
            job.restoreReadOnly();
            throw e;
        }
        return job;
    }

    private static boolean isBelow(BlockNode top, BlockNode candidate) {
        for (BlockNode n = top.backing(); n != null; n = n.backing()) {
            if (n == candidate) {
                return true;
            }
        }
        return false;
    }

    @Override
    public List<BlockNode> blockedNodes() {
        List<BlockNode> l = new ArrayList<>();
        l.add(target);
        l.addAll(intermediates);
        return l;
    }

    @Override
    protected boolean hasStepHeads() {
        return true;
    }

    @Override
    protected void run() throws Exception {
        if (intermediates.isEmpty()) {
            // QEMU 7.2's stream_run: nothing between the target and the base, so nothing to stream; the job ends at
            // once, whatever its speed, with len and offset 0 (the backing string is still rewritten on completion)
            return;
        }
        Image top = target.image();
        long len = top.size();
        setLen(len);
        Image baseImage = base == null ? null : base.image();
        // one copy buffer for the whole job (direct: read and written without extra copies, no garbage per step)
        ByteBuffer buffer = ByteBuffer.allocateDirect((int) Math.min(UNTHROTTLED_CHUNK, Math.max(len, 1)));
        copyLoop(top, len, baseImage, buffer);
    }

    private void copyLoop(Image top, long len, Image baseImage, ByteBuffer buffer) throws Exception {
        long offset = 0;
        long owed = 0; // bytes copied by the last throttled step, paid for by a sleep at the head of the next one
        IOException firstError = null;
        while (offset < len) {
            // QEMU's stream_run sleeps at the head of each step for what the previous step copied: a step that copies
            // nothing still waits for it, and the last step is followed by no sleep
            stepHead(owed);
            owed = 0;
            boolean throttled = info().speed() != 0;
            // The first step is QEMU's size even unthrottled: a pause or cancel given while it runs (a client that
            // held the drive with a blkdebug breakpoint, iotests 030 test_stream_pause) then takes effect where
            // QEMU's would, at 512 KiB; the steps after it are larger, for speed.
            long n = Math.min(throttled || offset == 0 ? CHUNK : UNTHROTTLED_CHUNK, len - offset);
            try {
                if (throttled) {
                    // QEMU's steps while throttled (each may sleep, so they must be QEMU's): one extent at a time,
                    // at most 512 KiB, allocated in the top (skipped) or not, and then copied when allocated above
                    // the base; past the end of the backing chain, the rest is one step
                    BlockStatus inTop = top.qemuBlockStatus(offset, n);
                    n = Math.max(1, Math.min(inTop.length(), n));
                    if (!inTop.allocated()) {
                        Allocation above = Images.isAllocatedAbove(top.backing(), offset, n, baseImage, true);
                        if (!above.allocated() && above.length() == 0) {
                            n = len - offset;
                        } else {
                            n = Math.max(1, Math.min(above.length(), n));
                            if (above.allocated()) {
                                top.copyUpFromBacking(offset, n, baseImage, buffer);
                                owed = n;
                            }
                        }
                    }
                } else {
                    // unthrottled, larger steps amortise the engine's per-call metadata sync; a step still takes
                    // only tens of milliseconds, so pause and cancel stay prompt
                    top.copyUpFromBacking(offset, n, baseImage, buffer);
                }
            } catch (IOException e) {
                owed = 0;
                if (e instanceof CopyUpInterrupted part && part.completedUpTo() > offset) {
                    // QEMU's 512 KiB steps before the failing one are done and counted: the job's offset is the
                    // failing step's start, where a retry (stop) begins and a report leaves it
                    long done = Math.min(part.completedUpTo(), offset + n);
                    n -= done - offset;
                    offset = done;
                    setOffset(offset);
                }
                // A stream's copy is a read through the chain, so QEMU reports every failure as a read.
                ErrorAction action = ioError(e, true);
                if (action == ErrorAction.STOP) {
                    continue;
                }
                if (firstError == null) {
                    firstError = e;
                }
                if (action == ErrorAction.REPORT) {
                    break;
                }
                // ignore: QEMU skips the failing step only and copies on from the next one
                n = Math.min(n, (offset / CHUNK + 1) * CHUNK - offset);
            }
            offset += n;
            setOffset(offset);
            Thread.yield(); // between steps, let a monitor thread that is waiting for a CPU answer first
        }
        if (firstError != null) {
            throw new IOException(IoErrors.strerror(firstError), firstError);
        }
    }

    @Override
    protected void prepare() throws IOException {
        Image baseImage = base == null ? null : base.image();
        String fmt = base == null ? null : base.image().format();
        target.image().changeBackingFile(baseImage, backingFileString, fmt);
        target.setBacking(base);
        target.setAutoBackingFile(qemuBackingString);
        graph.dropNodes(intermediates);
        writeBackInBackground(target.image());
    }

    /**
     * The new header, like the copied data, is in the page cache, as QEMU leaves them (cache=writeback: durable at
     * the next flush). A killed process loses nothing (the writes reached the OS in a safe order); to keep the
     * window in which a power loss could drop copied data short, the image is flushed at once, off the job's path.
     */
    private void writeBackInBackground(Image image) {
        Thread t = new Thread(() -> {
            try {
                image.flush();
            } catch (IOException | RuntimeException e) {
                LOG.warn("write-back of {} after stream {} failed: {}", image.filename(), id(), e.getMessage());
            }
        }, "stream-writeback-" + id());
        t.setDaemon(true);
        t.start();
    }

    @Override
    boolean blocksItsFilter() {
        return true; // block/stream.c stream_start: block_job_add_bdrv(..., cor_filter_bs, ...)
    }

    @Override
    protected boolean releasesNodesWhenClean(boolean aborted) {
        return false; // block/stream.c: the nodes stay the job's until it is freed (dismissed)
    }

    @Override
    protected void clean() {
        graph.removeFilter(device, filter);
        restoreReadOnly();
    }

    private void restoreReadOnly() {
        if (targetWasReadOnly && !target.readOnly()) {
            try {
                target.image().flush();
                target.image().setReadOnly(true);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
