package io.livemon.block;

import io.livemon.image.BlockStatus;
import io.livemon.image.Image;
import io.livemon.image.ImageInfo;
import io.livemon.image.StricterThanQemu;
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
 * <p>What reaches the target follows QEMU 7.2's block-copy (block/block-copy.c): the work goes in tasks that each
 * cover one block-status run of the source, at most 1 MiB (one cluster with {@code compress}); runs that read as
 * zeroes by block status, and data tasks that turn out all zero, are written as zeroes (zero clusters in a qcow2
 * target), other data is written as is or, with {@code compress}, as compressed clusters.
 */
public final class BackupJob extends Job {
    /** Largest unit of work between pause points. */
    static final long MAX_REQUEST = 1 << 20;
    /** Largest run of zeroes (or of skipped clusters) one task handles: many clusters' entries in one L2 write. */
    static final long MAX_ZERO_TASK = 64L << 20;
    /** QEMU's backup runs up to this many block-copy tasks at once (BackupPerf max-workers). */
    static final int MAX_WORKERS = 64;

    /** The arguments of drive-backup / drive_backup. */
    public record Request(String jobId, String device, String target, String format, String sync, boolean reuse,
                          long speed, String bitmap, String bitmapMode, boolean compress, OnErrorPolicy onError,
                          OnErrorPolicy onTargetError, boolean autoFinalize, boolean autoDismiss, boolean targetIsNode) {
        /** drive-backup's fields; the target is a file to create or reuse. */
        public Request(String jobId, String device, String target, String format, String sync, boolean reuse,
                       long speed, String bitmap, String bitmapMode, boolean compress, OnErrorPolicy onError,
                       OnErrorPolicy onTargetError, boolean autoFinalize, boolean autoDismiss) {
            this(jobId, device, target, format, sync, reuse, speed, bitmap, bitmapMode, compress, onError,
                    onTargetError, autoFinalize, autoDismiss, false);
        }

        /** HMP {@code drive_backup [-n] [-f] [-c] device target [format]}. */
        public static Request hmp(String device, String target, String format, boolean reuse, boolean full,
                                  boolean compress) {
            return new Request(null, device, target, format, full ? "full" : "top", reuse, 0, null, null, compress,
                    OnErrorPolicy.REPORT, OnErrorPolicy.REPORT, true, true);
        }
    }

    private final BlockGraph graph;
    private final BlockDevice device;
    private final BlockNode source;
    private final BlockNode targetNode;
    private final JobTarget.Sync sync;
    private final boolean reuse;
    private final boolean compress;
    /** blockdev-backup: the target node belongs to the user (blockdev-add) and outlives the job. */
    private final boolean targetIsNode;
    private final long clusterSize;
    private final long size;
    private final List<BlockNode> blocked = new ArrayList<>();
    /** Released once the start sequence (running, paused, running) has been announced. */
    private final CountDownLatch started = new CountDownLatch(1);

    /** Guards {@link #done}, {@link #finished}, {@link #reading}, {@link #cbwBuf} and every copy to the target. */
    private final ReentrantLock copyLock = new ReentrantLock();
    /** Clusters whose point-in-time content is in the target (or that need no copy). */
    private final BitSet done = new BitSet();
    /** Whether the request that failed last was a source read (else a target write), for BLOCK_JOB_ERROR. */
    private boolean reading;
    /** Where the task copyTask works on ends (bytes): known before its I/O, so also when that fails. */
    private long taskEnd;
    /** The copy buffer of copy-before-write requests, made on first use. Guarded by copyLock. */
    private byte[] cbwBuf;
    private boolean finished;

    private final WriteListener cbw = new WriteListener() {
        @Override
        public void beforeWrite(long offset, long len) throws IOException {
            copyBeforeWrite(offset, len);
        }
    };

    private BackupJob(BlockGraph graph, String id, BlockDevice device, BlockNode source, BlockNode targetNode,
                      JobTarget.Sync sync, long clusterSize, Request r) {
        super(graph, id, JobType.BACKUP, r.speed(), r.onError(), r.onTargetError(), r.autoFinalize(), r.autoDismiss());
        this.graph = graph;
        this.device = device;
        this.source = source;
        this.targetNode = targetNode;
        this.sync = sync;
        this.reuse = r.reuse();
        this.compress = r.compress();
        this.targetIsNode = r.targetIsNode();
        this.clusterSize = clusterSize;
        this.size = source.size();
    }

    /** Validates as QEMU 7.2's drive_backup_prepare / do_backup_common, creates/opens the target, starts the job. */
    public static BackupJob start(BlockGraph graph, Request r, Consumer<String> stdout) throws BlockException {
        BlockNode named = r.device() == null ? null : graph.findNode(r.device());
        BlockDevice dev = r.device() == null ? null : graph.device(r.device());
        if (dev != null && dev.root() != null) {
            named = dev.root();
        }
        // drive-backup is a transaction action: it runs inside the transaction's drained section
        try (BlockGraph.Drained drained = graph.drainForTransaction(named)) {
            return startDrained(graph, r, stdout);
        }
    }

    private static BackupJob startDrained(BlockGraph graph, Request r, Consumer<String> stdout)
            throws BlockException {
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
        BlockNode existing = null;
        if (r.targetIsNode()) {
            // blockdev-backup: the target is a node blockdev-add opened; it stays open after the job
            existing = graph.lookupNode(r.target(), r.target());
            graph.checkNotBusy(existing);
            if (existing.skipFilters() == source) {
                throw BlockErrors.sameSourceAndTarget();
            }
        }
        Image target;
        try {
            target = existing != null ? existing.image() : JobTarget.createAndOpen(graph, source, r.target(),
                    r.format(), r.reuse(), r.reuse() ? null : backing, true, stdout);
        } catch (BlockException e) {
            // QEMU lets a new node onto a raw image in use and compares the sizes before it attaches the target
            // (backup.c backup_job_create): its size error comes first where livemon's stricter lock refused
            if (e.getCause() instanceof StricterThanQemu s && s.imageSize() >= 0 && s.imageSize() != source.size()) {
                throw BlockErrors.differentSizes();
            }
            throw e;
        }
        BlockNode targetNode = existing;
        try {
            if (sync == JobTarget.Sync.INCREMENTAL || sync == JobTarget.Sync.BITMAP) {
                if (r.bitmap() == null) {
                    throw BlockErrors.bitmapNameRequired(sync.qapiName());
                }
            }
            if (r.bitmap() != null) {
                throw BlockErrors.bitmapNotFound(r.bitmap());
            }
            if (r.bitmapMode() != null) {
                throw BlockErrors.bitmapModeWithoutBitmap();
            }
            if (r.compress() && !target.supportsCompressedWrites()) {
                throw BlockErrors.compressionNotSupported();
            }
            if (target.size() != source.size()) {
                throw BlockErrors.differentSizes();
            }
            String id = r.jobId() != null ? r.jobId() : JobTarget.defaultJobId(graph, source);
            JobTarget.checkJobId(id);
            if (backing != null && !r.reuse() && existing == null) {
                // a reused target (-n, mode=existing) keeps the backing its own header names (none for raw)
                target.setBacking(backing.image());
            }
            long cs = 64 * 1024;
            ImageInfo ti = target.info();
            if (ti != null && ti.clusterSize() > cs) {
                cs = ti.clusterSize();
            }
            if (existing == null) {
                targetNode = graph.addNode(target, null);
                targetNode.setBacking(backing);
            }
            BackupJob job = new BackupJob(graph, id, device, source, targetNode, sync, cs, r);
            if (r.speed() < 0) {
                // QEMU creates the job before it checks the speed: the job goes from created straight to null.
                job.discardCreated();
                throw BlockErrors.negativeSpeed();
            }
            job.setLen(job.alignedLen()); // QEMU counts progress in whole job clusters
            job.blocked.add(source);
            job.blocked.add(targetNode);
            graph.startJobBehindFilter(job, device, source, "copy-before-write", null, job.cbw);
            // QEMU pauses the job briefly while it inserts the copy-before-write filter
            job.transition(JobStatus.PAUSED);
            job.transition(JobStatus.RUNNING);
            job.started.countDown();
            return job;
        } catch (IOException e) {
            if (existing == null) {
                JobTarget.discard(graph, targetNode, target);
            }
            throw BlockErrors.ioOrEio(e);
        } catch (BlockException | RuntimeException e) {
            if (existing == null) {
                JobTarget.discard(graph, targetNode, target);
            }
            throw e;
        }
    }

    @Override
    public List<BlockNode> blockedNodes() {
        return blocked;
    }

    /** Whether the job writes compressed clusters (drive-backup's {@code compress}, HMP {@code -c}). */
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
        copyLock.lock();
        try {
            if (finished) {
                return;
            }
            for (int c = done.nextClearBit(first); c <= last; c = done.nextClearBit(c)) {
                if (cbwBuf == null) {
                    cbwBuf = new byte[(int) chunkBytes()];
                }
                int to = dirtyRunEnd(c, last + 1);
                Task t = copyTask(c, to, cbwBuf);
                int end = endCluster(t.end());
                addOffset((long) (end - c) * clusterSize);
                c = end;
            }
        } finally {
            copyLock.unlock();
        }
    }

    /**
     * The most data one task reads: QEMU's 1 MiB copy buffer (BLOCK_COPY_MAX_BUFFER), at least a cluster. With
     * {@code compress} QEMU's tasks are one cluster each; livemon reads up to this much at once and then treats each
     * cluster on its own, which leaves the same result on disk.
     */
    private long chunkBytes() {
        return Math.max(clusterSize, MAX_REQUEST);
    }

    /**
     * End (exclusive) of the run of not-yet-copied clusters from {@code from}, before limit, at most
     * {@link #MAX_ZERO_TASK}: data tasks are cut to {@link #chunkBytes()} anyway, runs of zeroes go in bigger steps.
     */
    private int dirtyRunEnd(int from, int limit) {
        int perRequest = (int) Math.max(1, MAX_ZERO_TASK / clusterSize);
        int to = from + 1;
        while (to < limit && to - from < perRequest && !done.get(to)) {
            to++;
        }
        return to;
    }

    private int endCluster(long endByte) {
        return (int) ((endByte + clusterSize - 1) / clusterSize);
    }

    /** What one task did: the byte where it stopped (cluster-aligned or the image end), the data bytes it copied. */
    private record Task(long end, long data) {
    }

    /** How block-copy treats a run of the source (block/block-copy.c). */
    private enum RunKind {
        /** Allocated data: read and written (or written as zeroes when it reads as all zeroes). */
        DATA,
        /** Reads as zeroes by block status: the target gets zeroes (zero clusters) without reading. */
        ZERO,
        /** Not allocated above the base of sync=top: left alone. */
        SKIP
    }

    private record Run(RunKind kind, long length) {
    }

    /**
     * The source's block status at {@code pos} (at most maxLen bytes) as QEMU's block_copy_block_status sees it:
     * the whole chain, or the layers above the backing file for sync=top. Lengths are cut down to whole job
     * clusters (except at the image end); a run shorter than one cluster is copied as one cluster of data.
     */
    private Run status(long pos, long maxLen) throws IOException {
        Image base = sync == JobTarget.Sync.TOP ? source.backing().image() : null;
        Image img = source.image();
        long n = maxLen;
        RunKind kind;
        while (true) {
            if (img == null) {
                kind = RunKind.ZERO; // below the bottom layer everything reads as zeroes
                break;
            }
            if (img == base) {
                kind = RunKind.SKIP;
                break;
            }
            BlockStatus st = img.blockStatus(pos, n);
            if (st.length() <= 0) {
                kind = RunKind.ZERO; // past the end of a shorter backing file
                break;
            }
            n = Math.min(n, st.length());
            if (st.allocated()) {
                kind = st.kind() == BlockStatus.Kind.ZERO ? RunKind.ZERO : RunKind.DATA;
                break;
            }
            img = img.backing();
        }
        if (pos + n < size) {
            n = n / clusterSize * clusterSize;
            if (n == 0) {
                return new Run(RunKind.DATA, Math.min(clusterSize, size - pos));
            }
        }
        return new Run(kind, n);
    }

    /**
     * One block-copy task from cluster {@code from} within the not-yet-copied clusters [from, to): the status run
     * that starts there, at most {@link #chunkBytes()} of data. Data that reads as all zeroes is written as zeroes,
     * as QEMU 7.2's backup does (a task of zeroes becomes zero clusters in a qcow2 target); other data is written
     * compressed when asked. A freshly created raw target already reads as zeroes, so it gets no zero writes. Marks
     * the clusters done. Caller holds copyLock.
     */
    private Task copyTask(int from, int to, byte[] buf) throws IOException {
        long pos = from * clusterSize;
        long end = Math.min(size, to * clusterSize);
        Image target = targetNode.image();
        boolean writeZeroes = reuse || !target.format().equals("raw");
        reading = true;
        Run run = status(pos, end - pos);
        long n = Math.min(run.length(), end - pos);
        taskEnd = pos + n;
        long data = 0;
        IOException failure = null;
        switch (run.kind()) {
            case SKIP -> { }
            case ZERO -> {
                if (writeZeroes) {
                    reading = false;
                    target.writeZeroes(pos, n);
                }
            }
            case DATA -> {
                n = Math.min(n, chunkBytes());
                taskEnd = pos + n;
                source.image().read(pos, buf, 0, (int) n);
                reading = false;
                // QEMU's unit of zero detection is its task: one cluster when compressing, else the whole read
                long unit = compress ? clusterSize : n;
                long p = 0;
                while (p < n) {
                    long k = Math.min(unit, n - p);
                    boolean zero = isZero(buf, (int) p, (int) k);
                    long q = p + k;
                    while (q < n && isZero(buf, (int) q, (int) Math.min(unit, n - q)) == zero) {
                        q += Math.min(unit, n - q);
                    }
                    if (zero) {
                        if (writeZeroes) {
                            target.writeZeroes(pos + p, q - p);
                        }
                    } else if (compress) {
                        // one QEMU task per cluster, all in flight at once: a cluster that fails does not stop the
                        // clusters after it (the first failure is what the job reports)
                        for (long x = p; x < q; x += clusterSize) {
                            try {
                                target.writeCompressed(pos + x, buf, (int) x, (int) Math.min(clusterSize, q - x));
                            } catch (IOException e) {
                                if (failure == null) {
                                    failure = e;
                                }
                            }
                        }
                    } else {
                        target.write(pos + p, buf, (int) p, (int) (q - p));
                    }
                    p = q;
                }
                data = n;
            }
        }
        taskEnd = pos + n;
        done.set(from, endCluster(taskEnd));
        if (failure != null) {
            throw failure;
        }
        return new Task(taskEnd, data);
    }

    /** Whether buf[off, off+len) is all zero bytes (QEMU's buffer_is_zero). */
    private static boolean isZero(byte[] buf, int off, int len) {
        for (int i = off; i < off + len; i++) {
            if (buf[i] != 0) {
                return false;
            }
        }
        return true;
    }

    @Override
    protected void run() throws Exception {
        started.await();
        int clusters = clusters();
        byte[] buf = new byte[(int) chunkBytes()];
        if (sync == JobTarget.Sync.NONE) {
            while (true) {
                sleepNs(1_000_000_000L); // only copy-before-write; ends by cancel
            }
        }
        int c = 0;
        while (true) {
            pausePoint();
            Task t;
            int from;
            copyLock.lock();
            try {
                from = done.nextClearBit(c);
                if (from >= clusters) {
                    break;
                }
                int to = dirtyRunEnd(from, clusters);
                try {
                    t = copyTask(from, to, buf);
                } catch (IOException e) {
                    ErrorAction action = ioError(e, reading);
                    if (action == ErrorAction.REPORT) {
                        finishTasksInFlight(endCluster(taskEnd), clusters, buf);
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
            c = endCluster(t.end());
            addOffset((long) (c - from) * clusterSize);
            // QEMU's block-copy sleeps before a step, so the last step is not followed by a sleep
            if (t.data() > 0 && hasMoreToCopy(c, clusters)) {
                rateLimit(t.data());
            }
        }
        setOffset(alignedLen());
    }

    /**
     * After a failed task of an unthrottled backup (the tasks from cluster {@code next} on follow it): QEMU's block-copy had already started the tasks that follow it,
     * up to {@link #MAX_WORKERS} in all (block/block-copy.c block_copy_dirty_clusters starts tasks until its pool is
     * full and checks for a failure only before starting another), and those still write the target. So the target
     * QEMU leaves behind holds them: they are copied here too, task for task (a cluster each when compressing, else
     * at most 1 MiB), their own failures ignored, their bytes counted as progress. QEMU may get further: tasks that
     * finish before the failed one free slots for more (how many depends on its threads' timing; a 64 MiB compressed
     * backup measured 187); the 63 are what it always does. A throttled job starts its tasks one rate-limit slice
     * apart, so nothing follows the failed one. Caller holds copyLock.
     */
    private void finishTasksInFlight(int next, int clusters, byte[] buf) {
        if (info().speed() != 0) {
            return;
        }
        int perTask = (int) Math.max(1, (compress ? clusterSize : chunkBytes()) / clusterSize);
        int c = next;
        for (int started = 1; started < MAX_WORKERS; started++) {
            c = done.nextClearBit(c);
            if (c >= clusters) {
                return;
            }
            try {
                int end = endCluster(copyTask(c, Math.min(clusters, c + perTask), buf).end());
                addOffset((long) (end - c) * clusterSize);
                c = end;
            } catch (IOException e) {
                c++; // a failure of its own: the job reports the first one
            }
        }
    }

    /** Whether a cluster from {@code c} on is still to be copied (then QEMU's block-copy sleeps before it). */
    private boolean hasMoreToCopy(int c, int clusters) {
        copyLock.lock();
        try {
            return done.nextClearBit(c) < clusters;
        } finally {
            copyLock.unlock();
        }
    }

    /** The job's length as QEMU reports it: the size rounded up to whole job clusters. */
    private long alignedLen() {
        return (long) clusters() * clusterSize;
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
        if (!targetIsNode) {
            graph.dropNodes(List.of(targetNode)); // drive-backup's own target; blockdev-backup's stays the user's
        }
    }
}
