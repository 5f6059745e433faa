package io.livemon.image;

import static io.livemon.image.Qcow2Format.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A qcow2 layer's map from guest clusters to host clusters (QEMU's block/qcow2-cluster.c): the active L1 table and
 * the L2 tables it points to (cached), copy-on-write of a shared L2 table, growing L1 and dropping the clusters past
 * a new end. Units: {@code gc} is a guest cluster index (guest offset &gt;&gt; cluster bits); offsets are bytes.
 *
 * <p>Crash order: a new L2 table is written before the L1 entry that points at it; entries are replaced before the
 * clusters they pointed to are freed (see {@link Qcow2Refcounts}).
 *
 * <p>Concurrency: every method and field is guarded by the owning layer's {@code meta} lock.
 */
final class Qcow2ClusterMap {
    /** What a guest cluster is in this layer (QEMU's QCow2ClusterType, subclusters aside). */
    enum ClusterKind { UNALLOCATED, ZERO, DATA, COMPRESSED }

    private final Qcow2File file;
    private final Qcow2Header h;
    private final Qcow2Refcounts refcounts;
    private final long cs;
    private final int clusterBits;
    private final int l2Bits;
    private final Qcow2TableCache l2Tables;

    /** The active L1 table (host offsets of L2 tables with flags, 0: none). */
    long[] l1;
    long l1Offset;

    Qcow2ClusterMap(Qcow2File file, Qcow2Header h, Qcow2Refcounts refcounts, long cacheBytes) throws IOException {
        this.file = file;
        this.h = h;
        this.refcounts = refcounts;
        this.cs = h.clusterSize;
        this.clusterBits = h.clusterBits;
        this.l2Bits = h.l2Bits;
        this.l2Tables = new Qcow2TableCache(file, cs, cacheBytes / cs, "L2 table");
        this.l1Offset = h.l1Offset;
        this.l1 = file.readLongs(l1Offset, (int) h.l1Entries);
    }

    /** The L2 table at host offset {@code off} (cached; a change must be written by the caller). */
    byte[] table(long off) throws IOException {
        return l2Tables.get(off);
    }

    /** Whether {@code host} (bytes) is the start of a cached L2 table (the metadata overlap check). */
    boolean isCachedTable(long host) {
        return l2Tables.contains(host);
    }

    /** Whether the L2 table of guest cluster {@code gc} exists. */
    boolean hasTable(long gc) {
        long l1i = gc >>> l2Bits;
        return l1i < l1.length && (l1[(int) l1i] & OFFSET_MASK) != 0;
    }

    /** The L2 entry of guest cluster {@code gc}; 0 when its L2 table does not exist. */
    long entry(long gc) throws IOException {
        long l1i = gc >>> l2Bits;
        if (l1i >= l1.length) {
            return 0;
        }
        long l2off = l1[(int) l1i] & OFFSET_MASK;
        if (l2off == 0) {
            return 0;
        }
        byte[] t = l2Tables.get(l2off);
        return ByteBuffer.wrap(t).getLong((int) (gc & ((1L << l2Bits) - 1)) * 8);
    }

    ClusterKind kindOf(long e) {
        if ((e & OFLAG_COMPRESSED) != 0) {
            return ClusterKind.COMPRESSED;
        }
        if (h.version == 3 && (e & OFLAG_ZERO) != 0) {
            return ClusterKind.ZERO;
        }
        return (e & OFFSET_MASK) != 0 ? ClusterKind.DATA : ClusterKind.UNALLOCATED;
    }

    private static BlockStatus.Kind statusKind(ClusterKind k) {
        return k == ClusterKind.UNALLOCATED ? BlockStatus.Kind.UNALLOCATED
                : k == ClusterKind.ZERO ? BlockStatus.Kind.ZERO : BlockStatus.Kind.DATA;
    }

    /**
     * The longest run from guest byte {@code offset} (below {@code end}) whose clusters are all unallocated, all
     * zero, or all data (compressed counts as data), whatever their host offsets. A missing L2 table answers for
     * everything it would map.
     */
    BlockStatus status(long offset, long end) throws IOException {
        BlockStatus.Kind kind = null;
        long pos = offset;
        while (pos < end) {
            long gc = pos >>> clusterBits;
            long l1i = gc >>> l2Bits;
            BlockStatus.Kind k;
            long runEnd;
            if (l1i >= l1.length || (l1[(int) l1i] & OFFSET_MASK) == 0) {
                k = BlockStatus.Kind.UNALLOCATED;
                runEnd = (l1i + 1) << (l2Bits + clusterBits);
            } else {
                k = statusKind(kindOf(entry(gc)));
                runEnd = (gc + 1) << clusterBits;
            }
            if (kind == null) {
                kind = k;
            } else if (k != kind) {
                break;
            }
            pos = Math.min(runEnd, end);
        }
        return new BlockStatus(kind, pos - offset);
    }

    /**
     * QEMU's answer for guest byte {@code offset} ({@code end} within its L2 table; qcow2-cluster.c
     * qcow2_get_host_offset, count_contiguous_subclusters): a run of clusters of one kind that ends where a data or
     * preallocated zero cluster is not the next cluster in the file, and after a compressed cluster, which QEMU
     * answers for on its own.
     */
    BlockStatus qemuStatus(long offset, long end) throws IOException {
        long gc = offset >>> clusterBits;
        long l1i = gc >>> l2Bits;
        if (l1i >= l1.length || (l1[(int) l1i] & OFFSET_MASK) == 0) {
            return new BlockStatus(BlockStatus.Kind.UNALLOCATED, end - offset);
        }
        long first = entry(gc);
        ClusterKind kind = kindOf(first);
        boolean checkOffset = kind == ClusterKind.DATA || (kind == ClusterKind.ZERO && (first & OFFSET_MASK) != 0);
        long expected = (first & OFFSET_MASK) + cs;
        long pos = (gc + 1) << clusterBits;
        if (kind != ClusterKind.COMPRESSED) {
            for (long c = gc + 1; pos < end; c++, pos += cs) {
                long e = entry(c);
                if (kindOf(e) != kind || (checkOffset && (e & OFFSET_MASK) != expected)) {
                    break;
                }
                expected += cs;
            }
        }
        return new BlockStatus(statusKind(kind), Math.min(pos, end) - offset);
    }

    void setL1(int i, long v) throws IOException {
        l1[i] = v;
        file.writeLong(l1Offset + (long) i * 8, v);
    }

    /** Sets the L2 entry of {@code gc}, whose table exists and is writable (see {@link #ensureWritable}). */
    void setL2(long gc, long v) throws IOException {
        long l2off = l1[(int) (gc >>> l2Bits)] & OFFSET_MASK;
        byte[] t = l2Tables.get(l2off);
        int at = (int) (gc & ((1L << l2Bits) - 1)) * 8;
        ByteBuffer.wrap(t).putLong(at, v);
        file.write(t, at, 8, l2off + at);
    }

    /** Makes sure the L2 table for guest cluster gc exists and is owned by this image only (refcount 1). */
    void ensureWritable(long gc) throws IOException {
        int l1i = (int) (gc >>> l2Bits);
        long e = l1[l1i];
        long off = e & OFFSET_MASK;
        if (off == 0) {
            long n = refcounts.allocateCluster();
            byte[] t = new byte[(int) cs];
            file.write(t, 0, t.length, n);
            file.syncMeta();
            l2Tables.put(n, t);
            setL1(l1i, n | OFLAG_COPIED);
            return;
        }
        long rc = refcounts.get(off >> clusterBits);
        if (rc != 1) {
            byte[] old = l2Tables.get(off);
            long n = refcounts.allocateCluster();
            byte[] t = old.clone();
            file.write(t, 0, t.length, n);
            file.syncMeta();
            l2Tables.put(n, t);
            setL1(l1i, n | OFLAG_COPIED);
            if (rc > 1) {
                refcounts.update(off >> clusterBits, -1);
            }
            return;
        }
        if ((e & OFLAG_COPIED) == 0) {
            setL1(l1i, off | OFLAG_COPIED);
        }
    }

    /**
     * Makes guest clusters [gc, end) zero clusters (version 3); all of them in {@code gc}'s L2 table. The changed
     * entries go to the file in one write, then the clusters they pointed to are freed.
     */
    void setZeroInTable(long gc, long end) throws IOException {
        long perTable = 1L << l2Bits;
        ensureWritable(gc);
        long l2off = l1[(int) (gc >>> l2Bits)] & OFFSET_MASK;
        byte[] t = l2Tables.get(l2off);
        ByteBuffer tb = ByteBuffer.wrap(t);
        List<Long> old = new ArrayList<>();
        int lo = Integer.MAX_VALUE;
        int hi = 0;
        for (long g = gc; g < end; g++) {
            int at = (int) (g & (perTable - 1)) * 8;
            long e = tb.getLong(at);
            if (e != OFLAG_ZERO) {
                tb.putLong(at, OFLAG_ZERO);
                old.add(e);
                lo = Math.min(lo, at);
                hi = at + 8;
            }
        }
        if (!old.isEmpty()) {
            file.write(t, lo, hi - lo, l2off + lo);
            for (long e : old) {
                refcounts.freeEntry(e);
            }
        }
    }

    /**
     * Points guest clusters [gc0, gc0+n) at the host-contiguous clusters from {@code host} (bytes), writing each L2
     * table's changed entries at once. The data must already be in place (and synced, when the layer syncs).
     */
    void mapContiguous(long gc0, long n, long host) throws IOException {
        for (long i = 0; i < n; ) {
            long gc = gc0 + i;
            ensureWritable(gc);
            long l1i = gc >>> l2Bits;
            long l2off = l1[(int) l1i] & OFFSET_MASK;
            byte[] t = l2Tables.get(l2off);
            int first = (int) (gc & ((1L << l2Bits) - 1));
            int k = 0;
            ByteBuffer tb = ByteBuffer.wrap(t);
            while (i + k < n && ((gc + k) >>> l2Bits) == l1i) {
                tb.putLong((first + k) * 8, (host + ((i + k) << clusterBits)) | OFLAG_COPIED);
                k++;
            }
            file.write(t, first * 8, k * 8, l2off + first * 8L);
            i += k;
        }
    }

    /** Drops every cluster from the one holding guest byte {@code newSize} (rounded up to a cluster) on. */
    void shrink(long newSize) throws IOException {
        long firstGone = ((newSize + cs - 1) & ~(cs - 1)) >>> clusterBits;
        long perL2 = 1L << l2Bits;
        for (int l1i = 0; l1i < l1.length; l1i++) {
            long l2off = l1[l1i] & OFFSET_MASK;
            long tStart = (long) l1i << l2Bits;
            if (l2off == 0 || tStart + perL2 <= firstGone) {
                continue;
            }
            if (tStart >= firstGone) {
                // the whole table goes: drop the pointer, then the references
                byte[] t = l2Tables.get(l2off).clone();
                setL1(l1i, 0);
                long rc = refcounts.get(l2off >> clusterBits);
                if (rc == 1) {
                    ByteBuffer tb = ByteBuffer.wrap(t);
                    for (int i = 0; i < perL2; i++) {
                        refcounts.freeEntry(tb.getLong(i * 8));
                    }
                }
                refcounts.update(l2off >> clusterBits, -1);
                l2Tables.remove(l2off);
                continue;
            }
            ensureWritable(tStart);
            for (long gc = firstGone; gc < tStart + perL2; gc++) {
                long e = entry(gc);
                if (e != 0) {
                    setL2(gc, 0);
                    refcounts.freeEntry(e);
                }
            }
        }
    }

    /**
     * Moves the L1 table to a new place with {@code newEntries} entries (QEMU's qcow2_grow_l1_table): the new table
     * written and synced, then the header pointer, then the old table freed.
     */
    void grow(int newEntries) throws IOException {
        long bytes = (long) newEntries * 8;
        long clusters = (bytes + cs - 1) >> clusterBits;
        long off = refcounts.allocateContiguous(clusters);
        long[] n = Arrays.copyOf(l1, newEntries);
        ByteBuffer b = ByteBuffer.allocate((int) bytes);
        b.asLongBuffer().put(n);
        file.write(b, off);
        file.force(false);
        ByteBuffer hb = ByteBuffer.allocate(12);
        hb.putInt(0, newEntries).putLong(4, off);
        file.write(hb, HDR_L1_SIZE);
        file.force(false);
        long oldOff = l1Offset;
        long oldBytes = (long) l1.length * 8;
        l1 = n;
        l1Offset = off;
        if (oldBytes > 0) {
            refcounts.free(oldOff, oldBytes);
        }
    }
}
