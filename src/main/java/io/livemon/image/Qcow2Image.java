package io.livemon.image;

import static io.livemon.image.Qcow2Format.*;

import io.livemon.image.Qcow2ClusterMap.ClusterKind;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.UnaryOperator;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The qcow2 format driver (version 2 and 3; QEMU's block/qcow2.c): guest reads and writes, zero writes, discards,
 * compressed writes, block status, the stream's copy-up, resize, backing file changes, reopen and close. See QEMU's
 * docs/interop/qcow2.txt for the format. The parts it drives live beside it, split as QEMU splits them:
 * {@link Qcow2Header} (qcow2.c header), {@link Qcow2ClusterMap} (qcow2-cluster.c), {@link Qcow2Refcounts}
 * (qcow2-refcount.c), {@link Qcow2TableCache} (qcow2-cache.c), {@link Qcow2Repair} (refcount check and repair),
 * {@link Qcow2Bitmaps} (qcow2-bitmap.c) and {@link Qcow2File} (the file node).
 *
 * <p>Metadata caches are write-through: every L1/L2/refcount change is written to the file immediately, in an order
 * that keeps the image consistent after a crash (data before the L2 entry, refcount increments before the pointer,
 * decrements after the pointer is gone). At worst, clusters leak.
 */
public final class Qcow2Image implements Image {
    private static final Logger LOG = LoggerFactory.getLogger(Qcow2Image.class);

    /**
     * Cache sizes and flush policy for one opened qcow2 image.
     *
     * <p>{@code syncMetadata}: whether an {@code fsync} separates every data write from the L2 entry that points at
     * it (and a new table from its pointer). Off by default: the engine writes in an order that is safe against a
     * killed process (data before the L2 entry, refcount increments before the pointer, decrements after it), and
     * a killed process loses nothing that reached the OS; only power loss can reorder what reached the disk, and
     * for that the contract is QEMU's {@code cache=writeback}: what a completed {@link #flush()} (or close, or a
     * backing-file change) made durable survives, unflushed writes may be lost or leave leaked clusters. On, every
     * allocating write also survives power loss in that order, at the price of one fsync per write request.
     */
    public record Options(long l2CacheBytes, long refcountCacheBytes, boolean syncMetadata) {
        public static Options defaults() {
            return new Options(1 << 20, 256 << 10, false);
        }

        /** Tiny caches (one table each) for tests; keeps the per-write metadata sync so that path stays tested. */
        public static Options tiny() {
            return new Options(1, 1, true);
        }
    }

    private final Path path;
    private final String filename;
    private final Options options;

    private final ReentrantReadWriteLock opLock = new ReentrantReadWriteLock(); // guards the image shape: guest I/O holds read; resize/changeBackingFile/reopen/close hold write
    private final RangeLock rangeLock = new RangeLock(); // serialises guest requests on overlapping cluster-aligned ranges
    private final ReentrantLock meta = new ReentrantLock(); // guards the header's mutable fields, the cluster map, the refcounts, both table caches and the bitmaps' on-disk state

    private final Qcow2File file;
    /** The blkdebug layer under the file (a {@code blkdebug:} filename or node), or null. */
    private final BlkdebugRules blkdebug;
    /** End (guest bytes) of the highest write, zero write or discard since open: QEMU's wr_highest_offset. */
    private final AtomicLong guestWriteEnd = new AtomicLong();
    /** The file's own channel under any wrapper (blkdebug, tests): whether it is open tells the lock registry. */
    private volatile FileChannel rawCh;
    /** This image's claim in QEMU's locking protocol (see {@link ImageLocks}); released at close. */
    private final ImageLocks.Lease lease;
    private volatile boolean readOnly;
    private volatile Image backing;
    private volatile long size;
    private volatile boolean closed;

    private final Qcow2Header header;
    /** Cluster size (bytes) and its log2, from the header. */
    private final long cs;
    private final int clusterBits;
    private final Qcow2Refcounts refcounts;
    private final Qcow2ClusterMap map;
    private final Qcow2Repair repair;
    /**
     * The persistent dirty bitmaps this read-write image keeps (null: none, or opened read-only). Set under the op
     * write lock (open, reopen, close); writers read it under the op read lock and record into it.
     */
    private volatile Qcow2Bitmaps bitmaps;
    private final Qcow2Bitmaps.Host bitmapHost = new BitmapHost();

    private Qcow2Image(Path path, String filename, boolean readOnly, Options options,
                       UnaryOperator<FileChannel> channelWrapper) throws IOException {
        this.path = path;
        this.filename = filename;
        this.options = options == null ? Options.defaults() : options;
        this.readOnly = readOnly;
        FileChannel c = ChannelIo.openChannel(path, filename, readOnly);
        this.rawCh = c;
        try {
            this.lease = ImageLocks.acquire(path, filename, readOnly ? ImageLocks.Mode.READ : ImageLocks.Mode.WRITE,
                    false, () -> !closed && rawCh.isOpen());
        } catch (StricterThanQemu e) {
            // QEMU would have taken the locks and failed on the header next: report that where it fails
            long virtualSize = -1;
            try {
                virtualSize = Qcow2Header.read(new Qcow2File(c, filename, false), readOnly).virtualSize;
            } catch (ImageException headerError) {
                ImageLocks.close(c, path);
                throw headerError;
            } catch (IOException | RuntimeException ignored) {
                // unreadable: the lock refusal stands
            }
            ImageLocks.close(c, path);
            throw e.withImageSize(virtualSize);
        } catch (ImageException e) {
            ImageLocks.close(c, path);
            throw e;
        }
        if (channelWrapper != null) {
            c = channelWrapper.apply(c);
        }
        this.blkdebug = c instanceof BlkdebugChannel b ? b.rules() : null;
        this.file = new Qcow2File(c, filename, this.options.syncMetadata());
        boolean ok = false;
        try {
            header = Qcow2Header.read(file, readOnly);
            cs = header.clusterSize;
            clusterBits = header.clusterBits;
            size = header.virtualSize;
            refcounts = new Qcow2Refcounts(file, header, this.options.refcountCacheBytes());
            map = new Qcow2ClusterMap(file, header, refcounts, this.options.l2CacheBytes());
            repair = new Qcow2Repair(file, header, refcounts, map);
            if (!readOnly) {
                meta.lock();
                try {
                    bitmaps = loadBitmaps();
                } finally {
                    meta.unlock();
                }
            }
            // validation passed; only now may the file be modified
            if (!readOnly) {
                meta.lock();
                try {
                    if ((header.incompat & INCOMPAT_DIRTY) != 0) {
                        LOG.info("{}: image is dirty, rebuilding refcounts", filename);
                        repair.rebuildRefcounts(bitmaps);
                        header.writeIncompat(header.incompat & ~INCOMPAT_DIRTY);
                        if (bitmaps != null) {
                            bitmaps.checkOwnership(bitmapHost);
                        }
                    }
                    clearUnknownAutoclear();
                    if (bitmaps != null) {
                        bitmaps.markInUse(bitmapHost);
                    }
                } finally {
                    meta.unlock();
                }
            }
            ok = true;
        } finally {
            if (!ok) {
                file.close();
                lease.release(); // re-takes the locks of the file's other images, which the close dropped
            }
        }
    }

    /** Opens a qcow2 layer (no backing image attached: see {@link #setBacking}). */
    public static Qcow2Image open(Path path, String filename, boolean readOnly, Options options) throws IOException {
        return new Qcow2Image(path, filename, readOnly, options, null);
    }

    /**
     * Test seam (fault injection, see FaultInjectionTest): opens a layer whose file channel is
     * {@code channelWrapper.apply(realChannel)}, so a test can fail the N-th write or force with an IOException and
     * then "crash" by closing the real channel without {@link #close()}. Every metadata and data access of the
     * layer goes through that channel. Only the channel opened here is wrapped: {@link #setReadOnly} reopens an
     * unwrapped one. Not for production use.
     */
    static Qcow2Image openWrapped(Path path, String filename, boolean readOnly, Options options,
                                  UnaryOperator<FileChannel> channelWrapper) throws IOException {
        return new Qcow2Image(path, filename, readOnly, options, channelWrapper);
    }

    @Override
    public BlkdebugRules blkdebugRules() {
        return blkdebug;
    }

    @Override
    public long highestWriteEnd() {
        return guestWriteEnd.get();
    }

    @Override
    public long highestHostWriteEnd() {
        return file.highestWriteEnd();
    }

    // ------------------------------------------------------------------ the frame of a guest request

    /** What a request does to the image: reads; changes guest data; or copies backing data up (same guest bytes). */
    private enum Access { READ, WRITE, COPY_UP }

    @FunctionalInterface
    private interface RequestBody {
        long run() throws IOException;
    }

    @FunctionalInterface
    private interface RequestCheck {
        void run() throws ImageException;
    }

    /**
     * The frame of every guest request, as QEMU's bdrv_co_preadv/pwritev check and serialise them: under the op read
     * lock (the image keeps its shape), refuses a closed image, a write to a read-only one and a range past the end,
     * then {@code check} (may be null); a zero-length request ends there. A guest write is recorded in the dirty
     * bitmaps and wr_highest_offset before it starts. {@code body} runs holding the range lock on the clusters the
     * request touches: shared for reads, exclusive otherwise, so overlapping requests do not interleave.
     *
     * @return what {@code body} returns; 0 for a zero-length request
     */
    private long request(Access access, long offset, long len, RequestCheck check, RequestBody body)
            throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            if (access != Access.READ) {
                checkWritable();
            }
            checkRange(offset, len);
            if (check != null) {
                check.run();
            }
            if (len == 0) {
                return 0;
            }
            if (access == Access.WRITE) {
                recordInBitmaps(offset, len);
                guestWriteEnd.accumulateAndGet(offset + len, Math::max);
            }
            RangeLock.Range r = rangeLock.lock(alignDown(offset), alignUp(offset + len), access != Access.READ);
            try {
                return body.run();
            } finally {
                rangeLock.unlock(r);
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    // ------------------------------------------------------------------ public API

    @Override public String filename() { return filename; }
    @Override public Path path() { return path; }
    @Override public String format() { return "qcow2"; }
    @Override public long size() { return size; }
    @Override public boolean isReadOnly() { return readOnly; }
    @Override public Image backing() { return backing; }
    @Override public void setBacking(Image b) { this.backing = b; }

    @Override
    public String backingFileString() {
        meta.lock();
        try {
            return header.backingFile;
        } finally {
            meta.unlock();
        }
    }

    @Override
    public String backingFormatString() {
        meta.lock();
        try {
            return header.backingFormat;
        } finally {
            meta.unlock();
        }
    }

    public long clusterSize() {
        return cs;
    }

    private void checkOpen() throws ImageException {
        if (closed) {
            throw new ImageException("'" + filename + "' is closed");
        }
    }

    private void checkRange(long offset, long len) throws ImageException {
        if (offset < 0 || len < 0 || offset + len > size || offset + len < 0) {
            throw new ImageException("Request out of range for '" + filename + "': offset " + offset + " length "
                    + len + " size " + size);
        }
    }

    private void checkWritable() throws ImageException {
        if (readOnly) {
            throw new ImageException("Block node is read-only");
        }
    }

    private long alignDown(long v) {
        return v & ~(cs - 1);
    }

    private long alignUp(long v) {
        return (v + cs - 1) & ~(cs - 1);
    }

    private void readBacking(long pos, byte[] buf, int off, int n) throws IOException {
        readBacking(pos, ByteBuffer.wrap(buf), off, n);
    }

    /** Reads the backing chain's bytes at guest {@code pos} into {@code buf}[off, off+n) (absolute indexes). */
    private void readBacking(long pos, ByteBuffer buf, int off, int n) throws IOException {
        Image b = backing;
        long m = 0;
        if (b != null) {
            m = Math.max(0, Math.min(n, b.size() - pos));
            if (m > 0) {
                b.read(pos, ChannelIo.slice(buf, off, (int) m));
            }
        }
        if (m < n) {
            ChannelIo.zero(buf, off + (int) m, n - (int) m);
        }
    }

    private void checkDataOffset(long host, long guest) throws IOException {
        if ((host & (cs - 1)) != 0) {
            throw new ImageException("'" + filename + "': L2 entry for guest offset 0x" + Long.toHexString(guest)
                    + " points to unaligned host offset 0x" + Long.toHexString(host) + " (image is corrupt)");
        }
        if (host >= file.size()) {
            throw new ImageException("'" + filename + "': L2 entry for guest offset 0x" + Long.toHexString(guest)
                    + " points to host offset 0x" + Long.toHexString(host) + " outside the file (image is corrupt)");
        }
    }

    /**
     * Refuses an in-place guest write to a host cluster that holds metadata (a corrupt L2 entry pointing at the
     * header, the L1 table, the refcount table or a cached L2 table / refcount block), as QEMU's overlap check does
     * ("Preventing invalid write on metadata"). Only O(1) checks: a table that is not cached is not detected.
     * Caller holds meta.
     */
    private void checkNotMetadata(long host, long guest) throws ImageException {
        String what = null;
        if (host < cs) {
            what = "the image header";
        } else if (host + cs > map.l1Offset && host < map.l1Offset + (long) map.l1.length * 8) {
            what = "the active L1 table";
        } else if (host + cs > refcounts.tableOffset
                && host < refcounts.tableOffset + (long) refcounts.tableClusters * cs) {
            what = "the refcount table";
        } else if (map.isCachedTable(host)) {
            what = "an L2 table";
        } else if (refcounts.isCachedBlock(host)) {
            what = "a refcount block";
        }
        if (what != null) {
            throw new ImageException("'" + filename + "': L2 entry for guest offset 0x" + Long.toHexString(guest)
                    + " points to host offset 0x" + Long.toHexString(host) + ", which holds " + what
                    + "; preventing invalid write on metadata (image is corrupt)");
        }
    }

    private byte[] readCompressed(long e, long guest) throws IOException {
        long coff = e & header.coffsetMask;
        long nb = ((e >>> header.csizeShift) & header.csizeMask) + 1;
        long csize = nb * 512 - (coff & 511);
        long fileSize = file.size();
        if (coff < cs || coff >= fileSize) {
            throw new ImageException("'" + filename + "': compressed cluster for guest offset 0x"
                    + Long.toHexString(guest) + " at host offset 0x" + Long.toHexString(coff) + " is outside the file");
        }
        int n = (int) Math.min(csize, fileSize - coff);
        byte[] in = new byte[n];
        file.read(in, 0, n, coff);
        byte[] out = new byte[(int) cs];
        Inflater inf = new Inflater(true);
        try {
            inf.setInput(in);
            int got = 0;
            while (got < out.length) {
                int k = inf.inflate(out, got, out.length - got);
                if (k == 0 && (inf.finished() || inf.needsInput() || inf.needsDictionary())) {
                    break;
                }
                got += k;
            }
            if (got < out.length) {
                throw new ImageException("'" + filename + "': compressed cluster for guest offset 0x"
                        + Long.toHexString(guest) + " is corrupt (" + got + " of " + out.length + " bytes)");
            }
        } catch (DataFormatException ex) {
            throw new ImageException("'" + filename + "': compressed cluster for guest offset 0x"
                    + Long.toHexString(guest) + " is corrupt: " + ex.getMessage());
        } finally {
            inf.end();
        }
        return out;
    }

    @Override
    public void read(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        read(offset, ByteBuffer.wrap(buf), bufOffset, len);
    }

    /** Reads into a direct buffer without the copy a {@code byte[]} costs (FileChannel reads into it directly). */
    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        read(offset, dst, dst.position(), len);
        dst.position(dst.position() + len);
    }

    private void read(long offset, ByteBuffer buf, int bufOffset, int len) throws IOException {
        request(Access.READ, offset, len, null, () -> {
            readLocked(offset, buf, bufOffset, len);
            return 0;
        });
    }

    /** The L2 entry of guest cluster {@code gc}, read under meta. */
    private long entry(long gc) throws IOException {
        meta.lock();
        try {
            return map.entry(gc);
        } finally {
            meta.unlock();
        }
    }

    /** Reads guest bytes into {@code buf}[bufOffset, bufOffset+len) (absolute indexes). */
    private void readLocked(long offset, ByteBuffer buf, int bufOffset, int len) throws IOException {
        long pos = offset;
        long end = offset + len;
        // a run of clusters of one kind (host-contiguous for DATA)
        ClusterKind runKind = null;
        long runStart = 0;
        long runHost = 0;
        while (pos < end) {
            long gc = pos >>> clusterBits;
            long e = entry(gc);
            ClusterKind k = map.kindOf(e);
            long inC = pos & (cs - 1);
            int n = (int) Math.min(cs - inC, end - pos);
            long host = 0;
            if (k == ClusterKind.DATA) {
                long h = e & OFFSET_MASK;
                checkDataOffset(h, gc << clusterBits);
                host = h + inC;
            }
            if (runKind != null && (k != runKind || k == ClusterKind.COMPRESSED
                    || (k == ClusterKind.DATA && host != runHost + (pos - runStart)))) {
                readRun(runKind, runStart, runHost, pos - runStart, buf, bufOffset + (int) (runStart - offset));
                runKind = null;
            }
            if (k == ClusterKind.COMPRESSED) {
                byte[] data = readCompressed(e, gc << clusterBits);
                buf.put(bufOffset + (int) (pos - offset), data, (int) inC, n);
            } else if (runKind == null) {
                runKind = k;
                runStart = pos;
                runHost = host;
            }
            pos += n;
        }
        if (runKind != null) {
            readRun(runKind, runStart, runHost, end - runStart, buf, bufOffset + (int) (runStart - offset));
        }
    }

    private void readRun(ClusterKind k, long guest, long host, long len, ByteBuffer buf, int off) throws IOException {
        switch (k) {
            case UNALLOCATED -> readBacking(guest, buf, off, (int) len);
            case ZERO -> ChannelIo.zero(buf, off, (int) len);
            case DATA -> file.read(buf, off, (int) len, host);
            default -> throw new IllegalStateException();
        }
    }

    /** Full guest-visible content of one cluster as this layer currently sees it (for copy-on-write). */
    private byte[] clusterContent(long gc, long e) throws IOException {
        ClusterKind k = map.kindOf(e);
        long guest = gc << clusterBits;
        byte[] b = new byte[(int) cs];
        switch (k) {
            case COMPRESSED -> b = readCompressed(e, guest);
            case ZERO -> { }
            case DATA -> {
                long h = e & OFFSET_MASK;
                checkDataOffset(h, guest);
                file.read(b, 0, b.length, h);
            }
            case UNALLOCATED -> {
                int n = (int) Math.max(0, Math.min(cs, size - guest));
                readBacking(guest, b, 0, n);
            }
        }
        return b;
    }

    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        request(Access.WRITE, offset, len, null, () -> {
            writeLocked(offset, buf, bufOffset, len);
            return 0;
        });
    }

    /** A planned write into one cluster. */
    private record Plan(long gc, long host, long oldEntry, boolean fresh) {
    }

    /** Writes guest data; the caller holds the range lock (or the op write lock). */
    private void writeLocked(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        if (len > cs && (offset & (cs - 1)) == 0 && (((offset + len) & (cs - 1)) == 0 || offset + len == size)
                && writeNewClusters(offset, buf, bufOffset, len)) {
            return;
        }
        long first = offset >>> clusterBits;
        long last = (offset + len - 1) >>> clusterBits;
        List<Plan> plans = new ArrayList<>();
        meta.lock();
        try {
            header.markDirty();
            for (long gc = first; gc <= last; gc++) {
                map.ensureWritable(gc);
                long e = map.entry(gc);
                long h = e & OFFSET_MASK;
                if (map.kindOf(e) == ClusterKind.DATA && refcounts.get(h >> clusterBits) == 1) {
                    checkDataOffset(h, gc << clusterBits);
                    checkNotMetadata(h, gc << clusterBits);
                    plans.add(new Plan(gc, h, e, false));
                } else {
                    plans.add(new Plan(gc, refcounts.allocateCluster(), e, true));
                }
            }
        } finally {
            meta.unlock();
        }
        boolean anyFresh = false;
        try {
            for (Plan p : plans) {
                long cStart = p.gc << clusterBits;
                long s = Math.max(offset, cStart);
                long e = Math.min(offset + len, cStart + cs);
                int srcOff = bufOffset + (int) (s - offset);
                if (!p.fresh) {
                    file.write(buf, srcOff, (int) (e - s), p.host + (s - cStart));
                    continue;
                }
                anyFresh = true;
                byte[] cbuf;
                if (s == cStart && e >= Math.min(cStart + cs, size)) {
                    cbuf = new byte[(int) cs];
                } else {
                    cbuf = clusterContent(p.gc, p.oldEntry);
                }
                System.arraycopy(buf, srcOff, cbuf, (int) (s - cStart), (int) (e - s));
                file.write(cbuf, 0, cbuf.length, p.host);
            }
        } catch (IOException | RuntimeException ex) {
            meta.lock();
            try {
                for (Plan p : plans) {
                    if (p.fresh) {
                        refcounts.releaseAfterFailure(p.host, 1);
                    }
                }
            } finally {
                meta.unlock();
            }
            throw ex;
        }
        if (!anyFresh) {
            return;
        }
        meta.lock();
        try {
            file.syncMeta();
            for (Plan p : plans) {
                if (p.fresh) {
                    map.setL2(p.gc, p.host | OFLAG_COPIED);
                }
            }
            for (Plan p : plans) {
                if (p.fresh) {
                    refcounts.freeEntry(p.oldEntry);
                }
            }
        } finally {
            meta.unlock();
        }
    }

    /**
     * A write of several whole clusters none of which this layer may overwrite in place (new data: what a mirror or
     * backup target, or a guest filling an empty disk, writes), as QEMU's qcow2_alloc_cluster_offset handles it: one
     * host-contiguous allocation, one data write (the last cluster padded with zeroes at the image end), then, the
     * data synced when the layer syncs, each L2 table's entries in one write and the old entries' clusters freed.
     * Per cluster that took an allocation, a data write and an L2 write. The caller holds the range lock.
     *
     * @return false when a cluster holds data of this layer alone (refcount 1): the caller writes the request as
     *     usual (only the L2 tables were made writable and the dirty bit set, as that path does first)
     */
    private boolean writeNewClusters(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        long first = offset >>> clusterBits;
        int n = (int) (((offset + len - 1) >>> clusterBits) - first + 1);
        long[] old = new long[n];
        long host;
        meta.lock();
        try {
            header.markDirty();
            for (int i = 0; i < n; i++) {
                map.ensureWritable(first + i);
                long e = map.entry(first + i);
                if (map.kindOf(e) == ClusterKind.DATA && refcounts.get((e & OFFSET_MASK) >> clusterBits) == 1) {
                    return false;
                }
                old[i] = e;
            }
            host = refcounts.allocateContiguous(n);
        } finally {
            meta.unlock();
        }
        try {
            file.writeInPieces(ByteBuffer.wrap(buf, bufOffset, len), host);
            int tail = (int) ((long) n * cs - len);
            if (tail > 0) {
                file.write(new byte[tail], 0, tail, host + len);
            }
        } catch (IOException | RuntimeException ex) {
            meta.lock();
            try {
                refcounts.releaseAfterFailure(host, n);
            } finally {
                meta.unlock();
            }
            throw ex;
        }
        meta.lock();
        try {
            file.syncMeta();
            map.mapContiguous(first, n, host);
            for (long e : old) {
                refcounts.freeEntry(e);
            }
        } finally {
            meta.unlock();
        }
        return true;
    }

    /** Whether [cStart, cStart+cs) is entirely inside [s, e), treating the image end as the cluster end. */
    private boolean coversCluster(long s, long e, long cStart) {
        return s <= cStart && e >= Math.min(cStart + cs, size);
    }

    @Override
    public void writeZeroes(long offset, long len) throws IOException {
        request(Access.WRITE, offset, len, null, () -> {
            zeroLocked(offset, len);
            return 0;
        });
    }

    private void zeroLocked(long offset, long len) throws IOException {
        long end = offset + len;
        long pos = offset;
        byte[] zeros = null;
        while (pos < end) {
            long gc = pos >>> clusterBits;
            long cStart = gc << clusterBits;
            long cEnd = Math.min(cStart + cs, end);
            if (coversCluster(offset, end, cStart)) {
                long runEnd = cStart;
                while (runEnd < end && coversCluster(offset, end, runEnd)) {
                    runEnd += cs;
                }
                zeroClusters(gc, (runEnd - cStart) >> clusterBits);
                pos = Math.min(runEnd, end);
                continue;
            }
            if (zeros == null) {
                zeros = new byte[(int) cs];
            }
            writeLocked(pos, zeros, 0, (int) (cEnd - pos));
            pos = cEnd;
        }
    }

    /**
     * Makes whole guest clusters [gc0, gc0+n) read as zeroes: zero clusters in version 3; in version 2 unallocated
     * where no backing file shows through, else written with zeroes. The range lock is held.
     */
    private void zeroClusters(long gc0, long n) throws IOException {
        if (header.version == 3) {
            zeroClustersV3(gc0, n);
            return;
        }
        byte[] zeros = null;
        for (long gc = gc0; gc < gc0 + n; gc++) {
            long guest = gc << clusterBits;
            Image b = backing;
            if (b == null || guest >= b.size()) {
                meta.lock();
                try {
                    long e = map.entry(gc);
                    if (map.kindOf(e) != ClusterKind.UNALLOCATED) {
                        map.ensureWritable(gc);
                        e = map.entry(gc);
                        map.setL2(gc, 0);
                        refcounts.freeEntry(e);
                    }
                } finally {
                    meta.unlock();
                }
            } else {
                if (zeros == null) {
                    zeros = new byte[(int) cs];
                }
                writeLocked(guest, zeros, 0, (int) Math.min(cs, size - guest));
            }
        }
    }

    /**
     * Makes guest clusters [gc0, gc0+n) zero clusters (version 3), one L2 table at a time
     * ({@link Qcow2ClusterMap#setZeroInTable}). A backup of a large empty disk writes a zero entry for every cluster,
     * as QEMU does; entry by entry that took one system call per cluster.
     */
    private void zeroClustersV3(long gc0, long n) throws IOException {
        long perTable = 1L << header.l2Bits;
        long gc = gc0;
        long end = gc0 + n;
        while (gc < end) {
            long tableEnd = Math.min(end, (gc / perTable + 1) * perTable);
            meta.lock();
            try {
                header.markDirty();
                map.setZeroInTable(gc, tableEnd);
            } finally {
                meta.unlock();
            }
            gc = tableEnd;
        }
    }

    // ------------------------------------------------------------------ compressed writes

    @Override
    public boolean supportsCompressedWrites() {
        return true;
    }

    /**
     * Writes whole clusters compressed, as QEMU's qcow2_co_pwritev_compressed_part does: each cluster is deflated
     * alone (a short last cluster padded with zeroes), packed byte-granular after the previous compressed cluster
     * (block/qcow2-refcount.c qcow2_alloc_bytes), and the refcount of every host cluster it touches goes up by one.
     * A cluster that does not shrink below the cluster size is written as a normal cluster.
     *
     * @throws ImageException {@code Invalid argument} for an unaligned request; {@code Input/output error} when a
     *                        cluster is already allocated in this layer (QEMU's compressed writes never overwrite)
     */
    @Override
    public void writeCompressed(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        RequestCheck aligned = () -> {
            if ((offset & (cs - 1)) != 0 || ((len & (cs - 1)) != 0 && offset + len != size)) {
                throw new ImageException("Invalid argument");
            }
        };
        // a compressed write changes guest data like any other: recorded in the bitmaps
        request(Access.WRITE, offset, len, aligned, () -> {
            writeCompressedLocked(offset, buf, bufOffset, len);
            return 0;
        });
    }

    /** A compressed cluster whose data are written and whose L2 entry is not yet set. */
    private record Packed(long gc, long entry) {
    }

    /**
     * The clusters of {@link #writeCompressed} in order; the caller holds the range lock. The data of a run of
     * compressed clusters share one sync before their L2 entries are set. A failing cluster fails the request; the
     * clusters before it are written (QEMU writes each cluster as a task of its own).
     */
    private void writeCompressedLocked(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        // deflate every cluster first, on all cores (QEMU compresses in a thread pool too); allocation stays in order
        int clusters = (int) ((len + cs - 1) >>> clusterBits);
        byte[][] deflated = new byte[clusters][];
        java.util.stream.IntStream.range(0, clusters).parallel().forEach(i -> {
            int off = bufOffset + (int) ((long) i << clusterBits);
            int n = (int) Math.min(cs, len - ((long) i << clusterBits));
            if (n < cs) {
                byte[] padded = new byte[(int) cs];
                System.arraycopy(buf, off, padded, 0, n);
                deflated[i] = Qcow2CompressedWriter.deflate(padded, 0, padded.length, (int) cs - 1);
            } else {
                deflated[i] = Qcow2CompressedWriter.deflate(buf, off, n, (int) cs - 1);
            }
        });
        List<Packed> pending = new ArrayList<>();
        try {
            for (long guest = offset; guest < offset + len; guest += cs) {
                int off = bufOffset + (int) (guest - offset);
                int n = (int) Math.min(cs, offset + len - guest);
                byte[] packed = deflated[(int) ((guest - offset) >>> clusterBits)];
                long gc = guest >>> clusterBits;
                long host = -1;
                meta.lock();
                try {
                    if ((map.entry(gc) & OFFSET_MASK) != 0) {
                        throw new ImageException("Input/output error");
                    }
                    if (packed != null) {
                        header.markDirty();
                        map.ensureWritable(gc);
                        host = refcounts.allocateBytes(packed.length);
                    }
                } finally {
                    meta.unlock();
                }
                if (packed == null) {
                    setPending(pending);
                    writeLocked(guest, buf, off, n);
                    continue;
                }
                try {
                    file.write(packed, 0, packed.length, host);
                } catch (IOException | RuntimeException ex) {
                    meta.lock();
                    try {
                        refcounts.free(host, packed.length);
                    } catch (IOException ignored) {
                        // the bytes leak
                    } finally {
                        meta.unlock();
                    }
                    throw ex;
                }
                long sectors = ((host + packed.length - 1) >> 9) - (host >> 9);
                pending.add(new Packed(gc, OFLAG_COMPRESSED | (sectors << header.csizeShift) | host));
            }
        } finally {
            setPending(pending);
        }
    }

    /** Points the L2 entries of written compressed clusters at their data (the data synced first), and forgets them. */
    private void setPending(List<Packed> pending) throws IOException {
        if (pending.isEmpty()) {
            return;
        }
        meta.lock();
        try {
            file.syncMeta();
            for (Packed p : pending) {
                map.setL2(p.gc(), p.entry());
            }
            pending.clear();
        } finally {
            meta.unlock();
        }
    }

    @Override
    public void discard(long offset, long len) throws IOException {
        request(Access.WRITE, offset, len, null, () -> {
            long end = offset + len;
            for (long cStart = alignUp(offset); cStart < end; cStart += cs) {
                if (coversCluster(offset, end, cStart)) {
                    discardCluster(cStart >>> clusterBits);
                }
            }
            return 0;
        });
    }

    /**
     * Discards one whole guest cluster: a zero cluster in version 3 (unless it reads as zeroes already), unallocated
     * in version 2 when nothing shows through from a backing file. The range lock is held.
     */
    private void discardCluster(long gc) throws IOException {
        meta.lock();
        try {
            long e = map.entry(gc);
            ClusterKind k = map.kindOf(e);
            boolean hasData = k == ClusterKind.DATA || k == ClusterKind.COMPRESSED;
            if (header.version == 3) {
                if (e == OFLAG_ZERO || (!hasData && backing == null)) {
                    return;
                }
                header.markDirty();
                map.ensureWritable(gc);
                e = map.entry(gc);
                map.setL2(gc, OFLAG_ZERO);
                refcounts.freeEntry(e);
            } else if (backing == null && hasData) {
                map.ensureWritable(gc);
                e = map.entry(gc);
                map.setL2(gc, 0);
                refcounts.freeEntry(e);
            }
        } finally {
            meta.unlock();
        }
    }

    @Override
    public void flush() throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            if (!readOnly) {
                file.force(true);
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    @Override
    public BlockStatus blockStatus(long offset, long maxLen) throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            if (offset < 0 || offset >= size || maxLen <= 0) {
                return new BlockStatus(BlockStatus.Kind.UNALLOCATED, 0);
            }
            long end = offset + Math.min(maxLen, size - offset);
            if (offset >= end) {
                return new BlockStatus(BlockStatus.Kind.UNALLOCATED, 0);
            }
            meta.lock();
            try {
                return map.status(offset, end);
            } finally {
                meta.unlock();
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    /**
     * QEMU's answer (qcow2-cluster.c qcow2_get_host_offset, count_contiguous_subclusters): a run of clusters of one
     * kind that also ends at the end of the L2 table, where a data or preallocated zero cluster is not the next
     * cluster in the file, and after a compressed cluster, which QEMU answers for on its own.
     */
    @Override
    public BlockStatus qemuBlockStatus(long offset, long maxLen) throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            long end = Math.min(offset + Math.min(maxLen, size - offset),
                    ((offset >>> (header.l2Bits + clusterBits)) + 1) << (header.l2Bits + clusterBits));
            if (offset < 0 || offset >= end) {
                return new BlockStatus(BlockStatus.Kind.UNALLOCATED, 0);
            }
            meta.lock();
            try {
                return map.qemuStatus(offset, end);
            } finally {
                meta.unlock();
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    @Override
    public Allocation isAllocatedAbove(long offset, long maxLen, Image base) throws IOException {
        return Images.isAllocatedAbove(this, offset, maxLen, base);
    }

    @Override
    public long copyUpFromBacking(long offset, long len) throws IOException {
        return request(Access.COPY_UP, offset, len, null, () -> {
            if (backing == null) {
                return 0;
            }
            long end = offset + len;
            long written = 0;
            for (long cStart = alignDown(offset); cStart < end; cStart += cs) {
                long e = entry(cStart >>> clusterBits);
                if (map.kindOf(e) != ClusterKind.UNALLOCATED) {
                    continue;
                }
                int n = (int) Math.min(cs, size - cStart);
                byte[] data = new byte[n];
                readBacking(cStart, data, 0, n);
                writeLocked(cStart, data, 0, n);
                written += Math.min(end, cStart + n) - Math.max(offset, cStart);
            }
            return written;
        });
    }

    /** The batched copy-up reads the backing chain in requests of at most this many bytes, aligned to it. */
    private static final long COPY_UP_READ = 512 * 1024;

    /** Longest run the batched copy-up reads and writes at once when it allocates its own buffer. */
    private static final long COPY_RUN_MAX = 8L << 20;

    @Override
    public long copyUpFromBacking(long offset, long len, Image base) throws IOException {
        return copyUpFromBacking(offset, len, base, null);
    }

    /**
     * Batched copy-up for the stream job: finds every cluster of the range that is unallocated here and allocated
     * above {@code base}, reads each run through the chain with one request, writes it to freshly allocated
     * host-contiguous clusters with one request, then (one metadata sync for the whole range, as writeLocked does per
     * request) points the L2 entries at them, writing each L2 table's changed entries at once. Holds the range lock
     * throughout, so a guest write is never overwritten by backing data.
     *
     * <p>{@code buffer} (may be null: one is allocated for the call) is the copy buffer; runs longer than its
     * capacity are copied in pieces. A direct buffer is read into and written from without extra copies.
     *
     * <p>The chain is read in 512 KiB requests, as QEMU's stream reads it. When one fails, the clusters read before
     * it are still copied and {@link CopyUpInterrupted} says up to where (QEMU's stream keeps the steps it finished
     * and reports the failing step's start as the job's offset); a failed write copies nothing.
     */
    @Override
    public long copyUpFromBacking(long offset, long len, Image base, ByteBuffer buffer) throws IOException {
        return request(Access.COPY_UP, offset, len, null, () -> {
            Image b = backing;
            return b == null ? 0 : copyUpLocked(offset, len, b, base, buffer);
        });
    }

    /** The body of the batched copy-up (see above); the range lock is held. */
    private long copyUpLocked(long offset, long len, Image b, Image base, ByteBuffer buffer) throws IOException {
        long end = offset + len;
        // 1. cluster-aligned runs [start, end) to copy
        List<long[]> runs = new ArrayList<>();
        long pos = offset;
        while (pos < end) {
            BlockStatus st = blockStatus(pos, end - pos);
            long n = Math.max(1, Math.min(st.length(), end - pos));
            if (!st.allocated()) {
                long uEnd = pos + n;
                for (long p = pos; p < uEnd; ) {
                    Allocation a = b.isAllocatedAbove(p, uEnd - p, base);
                    long m = Math.max(1, Math.min(a.length(), uEnd - p));
                    if (a.allocated()) {
                        long s = alignDown(p);
                        long e = alignUp(p + m);
                        long[] last = runs.isEmpty() ? null : runs.get(runs.size() - 1);
                        if (last != null && last[1] >= s) {
                            last[1] = Math.max(last[1], e);
                        } else {
                            runs.add(new long[] {s, e});
                        }
                    }
                    p += m;
                }
            }
            pos += n;
        }
        if (runs.isEmpty()) {
            return 0;
        }
        // 2. data: read through the chain, allocate, write (no L2 entry points at it yet)
        List<long[]> done = new ArrayList<>(); // {guest start, clusters, host offset}
        long copied = 0;
        IOException readFailure = null;
        long completedUpTo = offset; // with readFailure: the range below this is copied (or needed no copy)
        try {
            ByteBuffer buf = buffer;
            if (buf == null || buf.capacity() < cs) {
                long longest = 0;
                for (long[] run : runs) {
                    longest = Math.max(longest, run[1] - run[0]);
                }
                buf = ByteBuffer.allocateDirect((int) Math.min(longest, COPY_RUN_MAX));
            }
            long step = buf.capacity() & ~(cs - 1);
            copying:
            for (long[] run : runs) {
                copied += Math.min(end, Math.min(run[1], size)) - Math.max(offset, run[0]);
                for (long s = run[0]; s < run[1]; s += step) {
                    long e = Math.min(run[1], s + step);
                    int data = (int) (Math.min(e, size) - s);
                    // read as QEMU's stream reads, one request per 512 KiB step (block/stream.c STREAM_CHUNK), so
                    // that a read error leaves the steps before it copied, and blkdebug sees QEMU's requests
                    int got = 0;
                    while (got < data) {
                        long at = s + got;
                        int m = (int) Math.min(data - got, (at / COPY_UP_READ + 1) * COPY_UP_READ - at);
                        try {
                            readBacking(at, buf, got, m);
                        } catch (IOException readError) {
                            readFailure = readError;
                            break;
                        }
                        got += m;
                    }
                    if (readFailure != null) {
                        e = s + ((got / cs) * cs); // whole clusters read before the failing request
                        completedUpTo = Math.max(offset, e);
                        if (e == s) {
                            break copying;
                        }
                    } else if (data < e - s) {
                        ChannelIo.zero(buf, data, (int) (e - s - data));
                    }
                    int n = (int) (e - s);
                    long host;
                    meta.lock();
                    try {
                        header.markDirty();
                        for (long c = s; c < e; c += cs) {
                            map.ensureWritable(c >>> clusterBits);
                        }
                        host = refcounts.allocateContiguous((e - s) >>> clusterBits);
                    } finally {
                        meta.unlock();
                    }
                    done.add(new long[] {s, (e - s) >>> clusterBits, host});
                    file.writeInPieces(ChannelIo.slice(buf, 0, n), host);
                    if (readFailure != null) {
                        break copying;
                    }
                }
            }
        } catch (IOException | RuntimeException ex) {
            meta.lock();
            try {
                for (long[] d : done) {
                    refcounts.releaseAfterFailure(d[2], d[1]);
                }
            } finally {
                meta.unlock();
            }
            throw ex;
        }
        // 3. metadata: data first, then the L2 entries, table by table
        meta.lock();
        try {
            file.syncMeta();
            for (long[] d : done) {
                map.mapContiguous(d[0] >>> clusterBits, d[1], d[2]);
            }
        } finally {
            meta.unlock();
        }
        if (readFailure != null) {
            throw new CopyUpInterrupted(completedUpTo, readFailure);
        }
        return copied;
    }

    @Override
    public void changeBackingFile(Image newBacking, String backingFileString, String fmt) throws IOException {
        opLock.writeLock().lock();
        try {
            checkOpen();
            checkWritable();
            meta.lock();
            try {
                String f = backingFileString == null || backingFileString.isEmpty() ? null : backingFileString;
                // Written after every data and metadata write that came before it (a killed process finds a
                // consistent image); durable at the next flush, as QEMU's header update with cache=writeback.
                rewriteHeader(f, f == null ? null : fmt);
                header.backingFile = f;
                header.backingFormat = f == null ? null : fmt;
                backing = newBacking;
            } finally {
                meta.unlock();
            }
        } finally {
            opLock.writeLock().unlock();
        }
    }

    @Override
    public void resize(long newSize) throws IOException {
        opLock.writeLock().lock();
        try {
            checkOpen();
            checkWritable();
            if (newSize < 0 || (newSize & 511) != 0) {
                throw new ImageException("The new size must be a multiple of 512 bytes");
            }
            long old = size;
            if (newSize == old) {
                return;
            }
            long coverage = cs * (cs / 8);
            long neededL1 = (newSize + coverage - 1) / coverage;
            if (neededL1 > MAX_L1_BYTES / 8) {
                throw new ImageException("Failed to grow the L1 table: File too large"); // QEMU's qcow2_grow_l1_table
            }
            Qcow2Bitmaps bm = bitmaps;
            if (bm != null) {
                bm.checkResize(newSize);
            }
            meta.lock();
            try {
                header.markDirty();
                if (newSize > old) {
                    if (neededL1 > map.l1.length) {
                        map.grow((int) neededL1);
                    }
                } else {
                    map.shrink(newSize);
                }
                file.force(false);
                header.writeField(HDR_SIZE, newSize);
                file.force(false);
                size = newSize;
                if (bm != null) {
                    bm.resize(newSize);
                }
            } finally {
                meta.unlock();
            }
            if (newSize > old) {
                long tailEnd = Math.min(alignUp(old), newSize);
                if (tailEnd > old) {
                    zeroLocked(old, tailEnd - old);
                }
                Image b = backing;
                if (b != null && b.size() > tailEnd) {
                    long zEnd = Math.min(b.size(), newSize);
                    if (zEnd > tailEnd) {
                        zeroLocked(tailEnd, zEnd - tailEnd);
                    }
                }
            }
        } finally {
            opLock.writeLock().unlock();
        }
    }

    @Override
    public void makeEmpty() throws IOException {
        opLock.writeLock().lock();
        try {
            checkOpen();
            checkWritable();
            meta.lock();
            try {
                header.markDirty();
                map.shrink(0);
                file.force(false);
            } finally {
                meta.unlock();
            }
        } finally {
            opLock.writeLock().unlock();
        }
    }

    /** Used by {@link Images#createQcow2}: sizes a freshly written, empty image. */
    void initialSize(long newSize) throws IOException {
        meta.lock();
        try {
            long coverage = cs * (cs / 8);
            long neededL1 = (newSize + coverage - 1) / coverage;
            if (neededL1 > MAX_L1_BYTES / 8) {
                throw new ImageException("Active L1 table too large");
            }
            if (neededL1 > map.l1.length) {
                map.grow((int) neededL1);
            }
            header.writeField(HDR_SIZE, newSize);
            file.force(true);
            size = newSize;
        } finally {
            meta.unlock();
        }
    }

    @Override
    public void setReadOnly(boolean ro) throws IOException {
        opLock.writeLock().lock();
        try {
            checkOpen();
            if (ro == readOnly) {
                return;
            }
            if (ro) {
                meta.lock();
                try {
                    file.force(true);
                    storeBitmaps(); // as QEMU's qcow2_reopen_bitmaps_ro: written back, in_use cleared
                    header.clearDirty();
                } finally {
                    meta.unlock();
                }
                FileChannel n = ChannelIo.openChannel(path, filename, true);
                file.close();
                file.replaceChannel(n);
                rawCh = n;
                readOnly = true;
                lease.change(false);
            } else {
                if ((header.incompat & INCOMPAT_CORRUPT) != 0) {
                    throw new ImageException("qcow2: Image is corrupt; cannot be opened read/write");
                }
                Qcow2Bitmaps loaded;
                meta.lock();
                try {
                    loaded = loadBitmaps(); // refuses before anything changes when they cannot be kept
                } finally {
                    meta.unlock();
                }
                lease.change(true);
                FileChannel n = ChannelIo.openChannel(path, filename, false);
                file.close();
                file.replaceChannel(n);
                rawCh = n;
                readOnly = false;
                // closing the old descriptor dropped the process's record locks on the file
                lease.reassert();
                meta.lock();
                try {
                    clearUnknownAutoclear();
                    if (loaded != null) {
                        loaded.markInUse(bitmapHost);
                    }
                    bitmaps = loaded;
                } finally {
                    meta.unlock();
                }
            }
        } finally {
            opLock.writeLock().unlock();
        }
    }

    @Override
    public ImageInfo info() throws IOException {
        meta.lock();
        try {
            long disk = Files.size(path);
            return new ImageInfo("qcow2", size, cs, header.version == 2 ? "0.10" : "1.1", header.refcountBits,
                    header.lazyRefcounts(), (header.incompat & INCOMPAT_CORRUPT) != 0,
                    (header.incompat & INCOMPAT_DIRTY) != 0, disk);
        } finally {
            meta.unlock();
        }
    }

    @Override
    public void close() throws IOException {
        if (blkdebug != null) {
            blkdebug.releaseAll(); // a request held at a breakpoint holds the op lock: let it go first
        }
        opLock.writeLock().lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            IOException bitmapError = null;
            if (!readOnly) {
                meta.lock();
                try {
                    file.force(true);
                    try {
                        storeBitmaps();
                    } catch (IOException e) {
                        // the bitmaps stay in_use on disk (inconsistent, as after a crash); the image itself is fine
                        bitmapError = e;
                    }
                    if (header.dirtySetByUs()) {
                        header.clearDirty();
                    }
                } finally {
                    meta.unlock();
                }
            }
            file.close();
            lease.release();
            if (bitmapError != null) {
                throw bitmapError;
            }
        } finally {
            opLock.writeLock().unlock();
        }
    }

    @Override
    public String toString() {
        return "Qcow2Image[" + filename + "]";
    }

    /** Rewrites the header with this backing name and format and the tables where they are now. Meta held. */
    private void rewriteHeader(String bfile, String bfmt) throws IOException {
        header.rewrite(bfile, bfmt, size, map.l1.length, map.l1Offset, refcounts.tableOffset,
                refcounts.tableClusters);
    }

    // ------------------------------------------------------------------ persistent dirty bitmaps (Qcow2Bitmaps)

    /**
     * The bitmaps a read-write open must keep, read and checked without writing anything (null: none). Meta held.
     *
     * @throws ImageException when the image holds bitmaps livemon cannot keep (QEMU's texts, see
     *     {@link Qcow2Bitmaps#load}), or a version 2 image holds a bitmaps extension
     */
    private Qcow2Bitmaps loadBitmaps() throws IOException {
        byte[] ext = header.extension(Qcow2Bitmaps.EXT_MAGIC);
        if (ext == null) {
            return null;
        }
        if (header.version < 3) {
            throw new ImageException("Cannot open '" + filename + "' read-write: it holds persistent dirty bitmaps "
                    + "(qcow2 bitmaps extension), which a header.version 2 image cannot keep valid; upgrade it with "
                    + "'qemu-img amend -o compat=1.1'");
        }
        if ((header.autoclear & Qcow2Bitmaps.AUTOCLEAR_BITMAPS) == 0) {
            return null; // a program without bitmap support wrote the image: already invalid, kept as it is
        }
        Qcow2Bitmaps r = Qcow2Bitmaps.load(bitmapHost, filename, cs, size, Qcow2Bitmaps.Ext.parse(ext, cs));
        if ((header.incompat & INCOMPAT_DIRTY) == 0) {
            r.checkOwnership(bitmapHost); // a dirty image is checked after its refcounts are rebuilt
        }
        return r;
    }

    /**
     * The bitmap directory as it is on disk now (flags {@code in-use} while this process keeps them), as QEMU's
     * qcow2_get_bitmap_info_list reads it; empty without a valid extension (autoclear bit 0 clear, version 2).
     *
     * @throws ImageException with QEMU's text when the directory is broken
     */
    @Override
    public List<BitmapInfo> bitmapInfo() throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            meta.lock();
            try {
                byte[] ext = header.extension(Qcow2Bitmaps.EXT_MAGIC);
                if (ext == null || header.version < 3 || (header.autoclear & Qcow2Bitmaps.AUTOCLEAR_BITMAPS) == 0) {
                    return List.of();
                }
                return Qcow2Bitmaps.describe(bitmapHost, Qcow2Bitmaps.Ext.parse(ext, cs));
            } finally {
                meta.unlock();
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    /** Clears the header.autoclear bits livemon does not know (the spec's rule for writers), keeps bit 0, bitmaps. */
    private void clearUnknownAutoclear() throws IOException {
        long keep = header.autoclear & Qcow2Bitmaps.AUTOCLEAR_BITMAPS;
        if (header.version == 3 && header.autoclear != keep) {
            header.autoclear = keep;
            header.writeField(HDR_AUTOCLEAR, keep);
            file.force(true);
        }
    }

    /** Writes the bitmaps back and forgets them (close, reopen read-only). Meta held. */
    private void storeBitmaps() throws IOException {
        Qcow2Bitmaps bm = bitmaps;
        if (bm != null) {
            bm.store(bitmapHost);
            bitmaps = null;
        }
    }

    /** Records a guest-visible change of [offset, offset+len) in the enabled bitmaps (QEMU's bdrv_set_dirty). */
    private void recordInBitmaps(long offset, long len) {
        Qcow2Bitmaps bm = bitmaps;
        if (bm != null) {
            bm.mark(offset, len);
        }
    }

    /** The file access and cluster allocation {@link Qcow2Bitmaps} needs; every call with meta held. */
    private final class BitmapHost implements Qcow2Bitmaps.Host {
        @Override
        public byte[] read(long pos, int len) throws IOException {
            if (pos < 0 || pos + len < 0) {
                // a hostile 64-bit offset: FileChannel would throw an unchecked exception out of the open
                throw new ImageException("'" + filename + "': bitmap structure at offset 0x" + Long.toHexString(pos)
                        + " is outside the file (image is corrupt)");
            }
            byte[] b = new byte[len];
            file.read(b, 0, len, pos);
            return b;
        }

        @Override
        public void write(long pos, byte[] b) throws IOException {
            file.write(b, 0, b.length, pos);
        }

        @Override
        public void sync() throws IOException {
            file.force(true);
        }

        @Override
        public long allocate(long bytes) throws IOException {
            return refcounts.allocateContiguous((bytes + cs - 1) >> clusterBits);
        }

        @Override
        public void free(long offset, long bytes) throws IOException {
            refcounts.free(offset, bytes);
        }

        @Override
        public long refcount(long offset) throws IOException {
            return refcounts.get(offset >> clusterBits);
        }

        @Override
        public int[] otherReferences() throws IOException {
            return repair.countReferences("check its bitmaps");
        }

        @Override
        public void setAutoclearBit(boolean on) throws IOException {
            header.autoclear = on ? header.autoclear | Qcow2Bitmaps.AUTOCLEAR_BITMAPS
                    : header.autoclear & ~Qcow2Bitmaps.AUTOCLEAR_BITMAPS;
            header.writeField(HDR_AUTOCLEAR, header.autoclear);
            file.force(true);
        }

        @Override
        public void writeExtension(byte[] data) throws IOException {
            header.putExtension(Qcow2Bitmaps.EXT_MAGIC, data);
            header.autoclear |= Qcow2Bitmaps.AUTOCLEAR_BITMAPS;
            rewriteHeader(header.backingFile, header.backingFormat);
            file.force(true);
        }
    }
}
