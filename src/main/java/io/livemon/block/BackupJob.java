package io.livemon.block;

import io.livemon.image.Allocation;
import io.livemon.image.Image;
import io.livemon.image.ImageInfo;
import java.io.IOException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * The backup job (drive_backup / drive-backup): a point-in-time copy of a drive. A copy-before-write listener on the
 * source copies the old data of every cluster a guest write is about to change, unless it was copied already; the
 * job copies the rest in the background. One lock covers "is this cluster done? copy it, mark it done", so a guest
 * write can never land on a cluster between the check and the copy. The drive keeps its image.
 *
 * <p>{@code compress} is accepted and reported, but the image engine has no compressed-cluster writer: clusters are
 * written uncompressed.
 */
public final class BackupJob extends Job {
    /** Largest unit of work between pause points. */
    static final long MAX_REQUEST = 1 << 20;

    /** The arguments of drive-backup / drive_backup. */
    public record Request(String jobId, String device, String target, String format, String sync, boolean reuse,
                          long speed, String bitmap, String bitmapMode, boolean compress, OnErrorPolicy onError,
                          boolean autoFinalize, boolean autoDismiss) {
        /** HMP {@code drive_backup [-n] [-f] [-c] device target [format]}. */
        public static Request hmp(String device, String target, String format, boolean reuse, boolean full,
                                  boolean compress) {
            return new Request(null, device, target, format, full ? "full" : "top", reuse, 0, null, null, compress,
                    OnErrorPolicy.REPORT, true, true);
        }
    }

    private final BlockGraph graph;
    private final BlockDevice device;
    private final BlockNode source;
    private final BlockNode targetNode;
    private final JobTarget.Sync sync;
    private final boolean reuse;
    private final boolean compress;
    private final long clusterSize;
    private final long size;
    private final List<BlockNode> blocked = new ArrayList<>();
    /** Released once the start sequence (running, paused, running) has been announced. */
    private final CountDownLatch started = new CountDownLatch(1);

    /** Guards {@link #done}, {@link #finished} and every copy to the target. */
    private final ReentrantLock copyLock = new ReentrantLock();
    /** Clusters whose point-in-time content is in the target (or that need no copy). */
    private final BitSet done = new BitSet();
    private boolean finished;

    private final WriteListener cbw = new WriteListener() {
        @Override
        public void beforeWrite(long offset, long len) throws IOException {
            copyBeforeWrite(offset, len);
        }
    };

    private BackupJob(BlockGraph graph, String id, BlockDevice device, BlockNode source, BlockNode targetNode,
                      JobTarget.Sync sync, long clusterSize, Request r) {
        super(graph, id, JobType.BACKUP, r.speed(), r.onError(), r.autoFinalize(), r.autoDismiss());
        this.graph = graph;
        this.device = device;
        this.source = source;
        this.targetNode = targetNode;
        this.sync = sync;
        this.reuse = r.reuse();
        this.compress = r.compress();
        this.clusterSize = clusterSize;
        this.size = source.size();
    }

    /** Validates as QEMU 7.2's drive_backup_prepare / do_backup_common, creates/opens the target, starts the job. */
    public static BackupJob start(BlockGraph graph, Request r, Consumer<String> stdout) throws BlockException {
        BlockNode named = graph.lookupNode(r.device(), r.device());
        graph.checkNotBusy(named);
        BlockNode source = named.skipFilters();
        BlockDevice device = graph.deviceOf(source);
        if (device != null && device.root().skipFilters() != source) {
            device = null;
        }
        JobTarget.Sync sync = JobTarget.Sync.fromQapi(r.sync());
        if (sync == JobTarget.Sync.TOP && source.backing() == null) {
            sync = JobTarget.Sync.FULL;
        }
        BlockNode backing = JobTarget.backingFor(source, sync);
        Image target = JobTarget.createAndOpen(graph, source, r.target(), r.format(), r.reuse(),
                r.reuse() ? null : backing, stdout);
        BlockNode targetNode = null;
        try {
            if (sync == JobTarget.Sync.INCREMENTAL || sync == JobTarget.Sync.BITMAP) {
                if (r.bitmap() == null) {
                    throw new BlockException("must provide a valid bitmap name for '" + sync.qapiName()
                            + "' sync mode");
                }
            }
            if (r.bitmap() != null) {
                throw new BlockException("Bitmap '" + r.bitmap() + "' could not be found");
            }
            if (r.bitmapMode() != null) {
                throw new BlockException("Cannot specify bitmap sync mode without a bitmap");
            }
            if (r.compress() && target.format().equals("raw")) {
                throw new BlockException("Compression is not supported for this drive ");
            }
            if (target.size() != source.size()) {
                throw new BlockException("Source and target image have different sizes");
            }
            String id = r.jobId() != null ? r.jobId() : JobTarget.defaultJobId(graph, source);
            JobTarget.checkJobId(id);
            if (backing != null) {
                target.setBacking(backing.image());
            }
            long cs = 64 * 1024;
            ImageInfo ti = target.info();
            if (ti != null && ti.clusterSize() > cs) {
                cs = ti.clusterSize();
            }
            targetNode = graph.addNode(target, null);
            targetNode.setBacking(backing);
            BackupJob job = new BackupJob(graph, id, device, source, targetNode, sync, cs, r);
            if (r.speed() < 0) {
                // QEMU creates the job before it checks the speed: the job goes from created straight to null.
                job.discardCreated();
                throw new BlockException("Parameter 'speed' expects a non-negative value");
            }
            job.setLen(job.size);
            job.blocked.add(source);
            job.blocked.add(targetNode);
            graph.startJobBehindFilter(job, device, source, "copy-before-write", job.cbw);
            // QEMU pauses the job briefly while it inserts the copy-before-write filter
            job.transition(JobStatus.PAUSED);
            job.transition(JobStatus.RUNNING);
            job.started.countDown();
            return job;
        } catch (IOException e) {
            JobTarget.discard(graph, targetNode, target);
            throw BlockGraph.wrap(e);
        } catch (BlockException | RuntimeException e) {
            JobTarget.discard(graph, targetNode, target);
            throw e;
        }
    }

    @Override
    public List<BlockNode> blockedNodes() {
        return blocked;
    }

    /** Whether compressed writes were asked for (they are written uncompressed, see the class comment). */
    public boolean compress() {
        return compress;
    }

    private int clusters() {
        return (int) ((size + clusterSize - 1) / clusterSize);
    }

    // ---------------------------------------------------------------- copying (under copyLock)

    /** Copy-before-write: the guest is about to change [offset, offset+len). */
    private void copyBeforeWrite(long offset, long len) throws IOException {
        if (len <= 0 || offset >= size) {
            return;
        }
        int first = (int) (offset / clusterSize);
        int last = (int) ((Math.min(size, offset + len) - 1) / clusterSize);
        byte[] buf = null;
        copyLock.lock();
        try {
            if (finished) {
                return;
            }
            for (int c = done.nextClearBit(first); c <= last; c = done.nextClearBit(c + 1)) {
                if (buf == null) {
                    buf = new byte[(int) clusterSize];
                }
                copyClusters(c, c + 1, buf, true);
            }
        } finally {
            copyLock.unlock();
        }
    }

    /**
     * Copies clusters [from, to) that are not done yet, as the sync mode wants, and marks them done. Caller holds
     * copyLock. Returns the bytes written to the target.
     */
    private long copyClusters(int from, int to, byte[] buf, boolean beforeGuestWrite) throws IOException {
        long start = from * clusterSize;
        long end = Math.min(size, to * clusterSize);
        Image src = source.image();
        Image target = targetNode.image();
        long written = 0;
        long pos = start;
        while (pos < end) {
            long n;
            boolean copy;
            if (sync == JobTarget.Sync.NONE) {
                n = end - pos; // the target is backed by the live source: every old byte must be preserved
                copy = true;
            } else {
                Image base = sync == JobTarget.Sync.TOP ? source.backing().image() : null;
                Allocation a = src.isAllocatedAbove(pos, end - pos, base);
                n = Math.max(1, Math.min(a.length(), end - pos));
                copy = a.allocated();
            }
            if (copy) {
                for (long p = pos; p < pos + n; p += buf.length) {
                    int k = (int) Math.min(buf.length, pos + n - p);
                    src.read(p, buf, 0, k);
                    target.write(p, buf, 0, k);
                }
                written += n;
            } else if (reuse && sync == JobTarget.Sync.FULL) {
                target.writeZeroes(pos, n);
            }
            pos += n;
        }
        done.set(from, to);
        if (beforeGuestWrite) {
            addOffset(end - start);
        }
        return written;
    }

    @Override
    protected void run() throws Exception {
        started.await();
        int clusters = clusters();
        int perRequest = (int) Math.max(1, MAX_REQUEST / clusterSize);
        byte[] buf = new byte[(int) Math.max(MAX_REQUEST, clusterSize)];
        if (sync == JobTarget.Sync.NONE) {
            while (true) {
                sleepNs(1_000_000_000L); // only copy-before-write; ends by cancel
            }
        }
        int c = 0;
        while (true) {
            pausePoint();
            long copied;
            int from;
            int to;
            copyLock.lock();
            try {
                from = done.nextClearBit(c);
                if (from >= clusters) {
                    break;
                }
                to = from + 1;
                while (to < clusters && to - from < perRequest && !done.get(to)) {
                    to++;
                }
                try {
                    copied = copyClusters(from, to, buf, false);
                } catch (IOException e) {
                    ErrorAction action = ioError(e, true);
                    if (action == ErrorAction.REPORT) {
                        throw e;
                    }
                    if (action == ErrorAction.IGNORE) {
                        done.set(from, to);
                        c = to;
                    }
                    continue;
                }
            } finally {
                copyLock.unlock();
            }
            addOffset(Math.min(size, to * clusterSize) - from * clusterSize);
            c = to;
            if (copied > 0) {
                rateLimit(copied);
            }
        }
        setOffset(size);
    }

    @Override
    protected void prepare() throws IOException {
        targetNode.image().flush();
    }

    @Override
    protected void clean() {
        copyLock.lock();
        try {
            finished = true;
        } finally {
            copyLock.unlock();
        }
        source.removeWriteListener(cbw);
        graph.removeFilter(device, filter);
        try {
            targetNode.image().flush();
        } catch (IOException e) {
            // the job's result already says what went wrong
        }
        graph.dropNodes(List.of(targetNode));
    }
}
