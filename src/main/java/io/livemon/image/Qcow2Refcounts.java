package io.livemon.image;

import static io.livemon.image.Qcow2Format.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A qcow2 layer's reference counts and host cluster allocation (QEMU's block/qcow2-refcount.c): the refcount table,
 * its refcount blocks (cached), the search for free clusters, growing the table, and the byte-granular allocation of
 * compressed data ({@code qcow2_alloc_bytes}).
 *
 * <p>Crash order: a refcount is raised before anything points at the cluster and lowered after the pointer is gone,
 * so a killed process can leak clusters but never leaves one referenced and free. Units: clusters are host cluster
 * indexes (host offset &gt;&gt; cluster bits) unless a name says bytes.
 *
 * <p>Concurrency: every method and field is guarded by the owning layer's {@code meta} lock.
 */
final class Qcow2Refcounts {
    private static final Logger LOG = LoggerFactory.getLogger(Qcow2Refcounts.class);

    private final Qcow2File file;
    private final Qcow2Header h;
    private final long cs;
    private final int clusterBits;
    private final int rbBits;
    private final Qcow2TableCache blocks;

    /** The refcount table (host offsets of refcount blocks, 0: none). */
    long[] table;
    long tableOffset;
    int tableClusters;
    /** Where the search for a free cluster starts. */
    long freeHint;
    /** One past the highest host cluster known to be in use or allocated (clusters). */
    long hostEnd;
    /**
     * Where the next compressed cluster's bytes go (QEMU's s->free_byte_offset): inside a host cluster that earlier
     * compressed clusters filled partly, or 0 when there is none. Not stored in the file: after a reopen, compressed
     * data start in a fresh cluster, as in QEMU.
     */
    private long freeByteOffset;
    /**
     * The refcount the cluster holding {@link #freeByteOffset} had right after our last allocation in it. Any other
     * value means something else changed that cluster since (a compressed cluster in it was freed, it was freed and
     * reused), so new bytes must not go there.
     */
    private long freeByteRefs;

    Qcow2Refcounts(Qcow2File file, Qcow2Header h, long cacheBytes) throws IOException {
        this.file = file;
        this.h = h;
        this.cs = h.clusterSize;
        this.clusterBits = h.clusterBits;
        this.rbBits = h.refcountBlockBits;
        this.blocks = new Qcow2TableCache(file, cs, cacheBytes / cs, "refcount block");
        this.tableOffset = h.refcountTableOffset;
        this.tableClusters = (int) h.refcountTableClusters;
        this.table = file.readLongs(tableOffset, (int) (h.refcountTableClusters * cs / 8));
        this.hostEnd = (file.size() + cs - 1) >> clusterBits;
    }

    private long getRc(byte[] b, long idx) {
        int i = (int) idx;
        switch (h.refcountOrder) {
            case 0, 1, 2: {
                int bits = h.refcountBits;
                int perByte = 8 / bits;
                int v = b[i / perByte] & 0xff;
                return (v >> ((i % perByte) * bits)) & ((1 << bits) - 1);
            }
            case 3:
                return b[i] & 0xff;
            case 4:
                return ByteBuffer.wrap(b).getShort(i * 2) & 0xffff;
            case 5:
                return ByteBuffer.wrap(b).getInt(i * 4) & 0xffffffffL;
            default:
                return ByteBuffer.wrap(b).getLong(i * 8);
        }
    }

    /** Sets an entry in a refcount block array and returns the byte offset of the bytes that changed. */
    private int setRc(byte[] b, long idx, long v) {
        int i = (int) idx;
        switch (h.refcountOrder) {
            case 0, 1, 2: {
                int bits = h.refcountBits;
                int perByte = 8 / bits;
                int shift = (i % perByte) * bits;
                int mask = ((1 << bits) - 1) << shift;
                b[i / perByte] = (byte) ((b[i / perByte] & ~mask) | (((int) v << shift) & mask));
                return i / perByte;
            }
            case 3:
                b[i] = (byte) v;
                return i;
            case 4:
                ByteBuffer.wrap(b).putShort(i * 2, (short) v);
                return i * 2;
            case 5:
                ByteBuffer.wrap(b).putInt(i * 4, (int) v);
                return i * 4;
            default:
                ByteBuffer.wrap(b).putLong(i * 8, v);
                return i * 8;
        }
    }

    private int rcBytes() {
        return Math.max(1, h.refcountBits / 8);
    }

    /** Whether {@code host} (bytes) is the start of a cached refcount block (the metadata overlap check). */
    boolean isCachedBlock(long host) {
        return blocks.contains(host);
    }

    /** The refcount of host cluster {@code cluster}; 0 past the table or where no refcount block exists. */
    long get(long cluster) throws IOException {
        long idx = cluster >>> rbBits;
        if (idx >= table.length) {
            return 0;
        }
        long off = table[(int) idx] & REFT_OFFSET_MASK;
        if (off == 0) {
            return 0;
        }
        return getRc(blocks.get(off), cluster & ((1L << rbBits) - 1));
    }

    /** Sets the refcount of a cluster whose refcount block exists. */
    void setRaw(long cluster, long v) throws IOException {
        long idx = cluster >>> rbBits;
        long off = table[(int) idx] & REFT_OFFSET_MASK;
        byte[] b = blocks.get(off);
        int at = setRc(b, cluster & ((1L << rbBits) - 1), v);
        file.write(b, at, rcBytes(), off + at);
        if (v == 0 && cluster < freeHint) {
            freeHint = cluster;
        }
    }

    /**
     * Adds {@code delta} to a cluster's refcount, creating its refcount block when needed.
     *
     * @throws ImageException when the count would become negative or pass the maximum (a corrupt image)
     */
    void update(long cluster, long delta) throws IOException {
        ensureBlockFor(cluster);
        long old = get(cluster);
        long nv = old + delta;
        if (nv < 0) {
            throw new ImageException("'" + file.filename + "': refcount of cluster at 0x"
                    + Long.toHexString(cluster << clusterBits) + " would become negative (image is corrupt)");
        }
        if (nv > h.refcountMax || (delta > 0 && nv < old)) {
            throw new ImageException("'" + file.filename + "': refcount overflow for cluster at 0x"
                    + Long.toHexString(cluster << clusterBits) + " (maximum " + h.refcountMax + ")");
        }
        setRaw(cluster, nv);
    }

    /** First run of n clusters with refcount 0, starting the search at {@code from}. */
    private long findFree(long from, long n) throws IOException {
        long c = Math.max(from, 1);
        long run = 0;
        long runStart = c;
        long perBlock = 1L << rbBits;
        while (true) {
            long idx = c >>> rbBits;
            if (idx >= table.length) {
                return run > 0 ? runStart : c;
            }
            if ((table[(int) idx] & REFT_OFFSET_MASK) == 0) {
                if (run == 0) {
                    runStart = c;
                }
                long blockEnd = (idx + 1) * perBlock;
                run += blockEnd - c;
                if (run >= n) {
                    return runStart;
                }
                c = blockEnd;
                continue;
            }
            if (get(c) == 0) {
                if (run == 0) {
                    runStart = c;
                }
                run++;
                if (run >= n) {
                    return runStart;
                }
            } else {
                run = 0;
            }
            c++;
        }
    }

    /** Makes sure the refcount block covering {@code cluster} exists (allocating it and growing the table). */
    void ensureBlockFor(long cluster) throws IOException {
        long idx = cluster >>> rbBits;
        while (true) {
            if (idx >= table.length) {
                growTable(idx + 1);
                continue;
            }
            if ((table[(int) idx] & REFT_OFFSET_MASK) != 0) {
                return;
            }
            long b = findFree(freeHint, 1);
            long bi = b >>> rbBits;
            byte[] blk = new byte[(int) cs];
            if (bi == idx) {
                // the new block describes itself
                setRc(blk, b & ((1L << rbBits) - 1), 1);
            } else if (bi >= table.length || (table[(int) bi] & REFT_OFFSET_MASK) == 0) {
                ensureBlockFor(b);
                continue;
            } else {
                setRaw(b, 1);
            }
            file.write(blk, 0, blk.length, b << clusterBits);
            file.syncMeta();
            table[(int) idx] = b << clusterBits;
            file.writeLong(tableOffset + idx * 8, table[(int) idx]);
            blocks.put(b << clusterBits, blk);
            hostEnd = Math.max(hostEnd, b + 1);
            file.syncMeta();
            return;
        }
    }

    /**
     * Moves the refcount table to a larger place with room for {@code minEntries} entries (QEMU's
     * qcow2_refcount_area): the new table and the refcount blocks that describe it first, synced, then the header
     * pointer, then the old table's clusters freed.
     *
     * @throws ImageException {@code Reference count table too large} past QEMU's limit
     */
    void growTable(long minEntries) throws IOException {
        long perCluster = cs / 8;
        long newEntries = Math.max(minEntries + 2, table.length + table.length / 2 + 1);
        newEntries = (newEntries + perCluster - 1) / perCluster * perCluster;
        long start = Math.max(hostEnd, (file.size() + cs - 1) >> clusterBits);
        while (true) {
            if (newEntries * 8 > MAX_REFTABLE_BYTES) {
                throw new ImageException("'" + file.filename + "': Reference count table too large");
            }
            long tClusters = newEntries * 8 / cs;
            TreeSet<Long> needed = new TreeSet<>();
            int k = 0;
            while (true) {
                needed.clear();
                for (long c = start; c < start + tClusters + k; c++) {
                    long bi = c >>> rbBits;
                    if (bi >= table.length || (table[(int) bi] & REFT_OFFSET_MASK) == 0) {
                        needed.add(bi);
                    }
                }
                if (needed.size() <= k) {
                    break;
                }
                k = needed.size();
            }
            if (!needed.isEmpty() && needed.last() >= newEntries) {
                newEntries = (needed.last() + 1 + perCluster) / perCluster * perCluster;
                continue;
            }
            long areaEnd = start + tClusters + k;
            boolean busy = false;
            for (long c = start; c < areaEnd && !busy; c++) {
                busy = get(c) != 0;
            }
            if (busy) {
                start = areaEnd;
                continue;
            }
            long[] newRt = Arrays.copyOf(table, (int) newEntries);
            Map<Long, byte[]> newBlocks = new LinkedHashMap<>();
            long next = start + tClusters;
            for (long bi : needed) {
                newRt[(int) bi] = next << clusterBits;
                newBlocks.put(bi, new byte[(int) cs]);
                next++;
            }
            for (long c = start; c < areaEnd; c++) {
                long bi = c >>> rbBits;
                byte[] blk = newBlocks.get(bi);
                if (blk != null) {
                    setRc(blk, c & ((1L << rbBits) - 1), 1);
                } else {
                    setRaw(c, 1);
                }
            }
            for (Map.Entry<Long, byte[]> e : newBlocks.entrySet()) {
                file.write(e.getValue(), 0, (int) cs, newRt[(int) (long) e.getKey()]);
            }
            ByteBuffer tb = ByteBuffer.allocate((int) (tClusters * cs));
            tb.asLongBuffer().put(newRt);
            file.write(tb, start << clusterBits);
            file.force(false);
            ByteBuffer hb = ByteBuffer.allocate(12);
            hb.putLong(0, start << clusterBits).putInt(8, (int) tClusters);
            file.write(hb, HDR_REFTABLE_OFFSET);
            file.force(false);
            long oldOff = tableOffset;
            int oldClusters = tableClusters;
            table = newRt;
            tableOffset = start << clusterBits;
            tableClusters = (int) tClusters;
            for (Map.Entry<Long, byte[]> e : newBlocks.entrySet()) {
                blocks.put(newRt[(int) (long) e.getKey()], e.getValue());
            }
            hostEnd = Math.max(hostEnd, areaEnd);
            for (int i = 0; i < oldClusters; i++) {
                update((oldOff >> clusterBits) + i, -1);
            }
            LOG.debug("{}: refcount table grown to {} clusters at 0x{}", file.filename, tClusters,
                    Long.toHexString(tableOffset));
            return;
        }
    }

    /** Allocates one cluster (refcount 1 written) and returns its host offset (bytes). */
    long allocateCluster() throws IOException {
        while (true) {
            long c = findFree(freeHint, 1);
            ensureBlockFor(c);
            if (get(c) == 0) {
                setRaw(c, 1);
                freeHint = c + 1;
                hostEnd = Math.max(hostEnd, c + 1);
                return c << clusterBits;
            }
        }
    }

    /** Allocates {@code n} host-contiguous clusters (refcounts 1 written) and returns the first one's offset (bytes). */
    long allocateContiguous(long n) throws IOException {
        while (true) {
            long start = findFree(freeHint, n);
            long savedHint = freeHint;
            freeHint = start + n; // new refcount blocks go after the run, not into it
            for (long c = start; c < start + n; c++) {
                ensureBlockFor(c);
            }
            freeHint = Math.min(freeHint, savedHint);
            boolean free = true;
            for (long c = start; c < start + n && free; c++) {
                free = get(c) == 0;
            }
            if (!free) {
                continue;
            }
            setToOne(start, n);
            hostEnd = Math.max(hostEnd, start + n);
            if (freeHint == start) {
                freeHint = start + n;
            }
            return start << clusterBits;
        }
    }

    /**
     * Sets the refcounts of clusters [start, start+n) (free, their refcount blocks existing) to 1 with one write per
     * refcount block instead of one per cluster.
     */
    private void setToOne(long start, long n) throws IOException {
        long c = start;
        long end = start + n;
        while (c < end) {
            long idx = c >>> rbBits;
            long off = table[(int) idx] & REFT_OFFSET_MASK;
            byte[] b = blocks.get(off);
            long blockEnd = Math.min(end, (idx + 1) << rbBits);
            int lo = Integer.MAX_VALUE;
            int hi = 0;
            for (; c < blockEnd; c++) {
                int at = setRc(b, c & ((1L << rbBits) - 1), 1);
                lo = Math.min(lo, at);
                hi = Math.max(hi, at + rcBytes());
            }
            file.write(b, lo, hi - lo, off + lo);
        }
    }

    /** Drops one reference from every cluster that [off, off+bytes) touches (bytes). */
    void free(long off, long bytes) throws IOException {
        long first = off >> clusterBits;
        long last = (off + bytes - 1) >> clusterBits;
        for (long c = first; c <= last; c++) {
            update(c, -1);
        }
    }

    /**
     * Gives back {@code n} clusters from {@code host} (bytes) that a failed write allocated and nothing points at: one
     * reference each, as far as the file lets; a cluster whose refcount cannot be written leaks.
     */
    void releaseAfterFailure(long host, long n) {
        for (long i = 0; i < n; i++) {
            try {
                update((host >> clusterBits) + i, -1);
            } catch (IOException ignored) {
                // the cluster leaks
            }
        }
    }

    /** Drops the reference an L2 entry held (after the entry itself has been replaced). */
    void freeEntry(long e) throws IOException {
        if ((e & OFLAG_COMPRESSED) != 0) {
            long coff = e & h.coffsetMask;
            long nb = ((e >>> h.csizeShift) & h.csizeMask) + 1;
            free(coff & ~511L, nb * 512);
        } else {
            long off = e & OFFSET_MASK;
            if (off != 0) {
                update(off >> clusterBits, -1);
            }
        }
    }

    /**
     * Allocates {@code n} bytes (1..cluster size) for compressed data, as QEMU's qcow2_alloc_bytes: right after the
     * previous compressed data when they fit in its host cluster (or run on into the next cluster when that one is
     * the next free cluster), else at the start of a new cluster. Increments the refcount of every cluster the bytes
     * touch. Returns the host offset (bytes).
     */
    long allocateBytes(int n) throws IOException {
        long off = freeByteOffset;
        if (off != 0) {
            long rc = get(off >> clusterBits);
            if (rc != freeByteRefs || rc >= h.refcountMax) {
                off = 0;
            }
        }
        long room = off == 0 ? 0 : cs - (off & (cs - 1));
        if (off == 0 || room < n) {
            long c;
            while (true) {
                c = findFree(freeHint, 1);
                ensureBlockFor(c);
                if (get(c) == 0) {
                    break;
                }
            }
            freeHint = c + 1;
            hostEnd = Math.max(hostEnd, c + 1);
            if (off == 0 || ((off + cs - 1) & ~(cs - 1)) != c << clusterBits) {
                off = c << clusterBits;
            }
        }
        long first = off >> clusterBits;
        long last = (off + n - 1) >> clusterBits;
        for (long c = first; c <= last; c++) {
            update(c, 1);
        }
        freeByteOffset = off + n;
        if ((freeByteOffset & (cs - 1)) == 0) {
            freeByteOffset = 0;
        } else {
            freeByteRefs = get(freeByteOffset >> clusterBits);
        }
        return off;
    }
}
