package io.livemon.image;

import static io.livemon.image.Qcow2Format.*;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Counting every reference in a qcow2 layer and repairing its refcounts from the count (QEMU's
 * block/qcow2-refcount.c {@code qcow2_check_refcounts} with {@code -r all}): what opening an image whose dirty bit
 * is set (lazy refcounts, a killed writer) does before anything else is written, and what the bitmap ownership check
 * compares against.
 *
 * <p>Concurrency: called with the owning layer's {@code meta} lock held.
 */
final class Qcow2Repair {
    private final Qcow2File file;
    private final Qcow2Header h;
    private final Qcow2Refcounts refcounts;
    private final Qcow2ClusterMap map;
    private final long cs;
    private final int clusterBits;

    Qcow2Repair(Qcow2File file, Qcow2Header h, Qcow2Refcounts refcounts, Qcow2ClusterMap map) {
        this.file = file;
        this.h = h;
        this.refcounts = refcounts;
        this.map = map;
        this.cs = h.clusterSize;
        this.clusterBits = h.clusterBits;
    }

    /**
     * References to each host cluster from the header, the L1 and refcount tables, the refcount blocks, the active
     * and snapshot L1/L2 tables and their data clusters; the bitmaps' clusters are not counted.
     *
     * @param what the operation named in the {@code image too large to ...} error
     */
    int[] countReferences(String what) throws IOException {
        long n = Math.max((file.size() + cs - 1) >> clusterBits, refcounts.hostEnd);
        if (n > Integer.MAX_VALUE - 8) {
            throw new ImageException("'" + file.filename + "': image too large to " + what);
        }
        int[] counts = new int[(int) n];
        ref(counts, 0, cs);
        ref(counts, map.l1Offset, (long) map.l1.length * 8);
        ref(counts, refcounts.tableOffset, (long) refcounts.tableClusters * cs);
        for (long r : refcounts.table) {
            if ((r & REFT_OFFSET_MASK) != 0) {
                ref(counts, r & REFT_OFFSET_MASK, cs);
            }
        }
        countL1(counts, map.l1);
        if (h.nbSnapshots > 0) {
            countSnapshots(counts);
        }
        return counts;
    }

    /**
     * Counts references from every structure, like qemu-img check -r all, and writes the result; then sets the
     * COPIED flags of the active tables from the new counts.
     *
     * @param bitmaps the layer's persistent bitmaps, whose clusters count too (null: none)
     */
    void rebuildRefcounts(Qcow2Bitmaps bitmaps) throws IOException {
        long fileClusters = (file.size() + cs - 1) >> clusterBits;
        // 1. drop stale refcounts past the end of the file (clusters allocated but never written)
        long perBlock = 1L << h.refcountBlockBits;
        long[] rt = refcounts.table;
        for (int idx = 0; idx < rt.length; idx++) {
            if ((rt[idx] & REFT_OFFSET_MASK) == 0) {
                continue;
            }
            long cFirst = Math.max(fileClusters, (long) idx * perBlock);
            for (long c = cFirst; c < (long) (idx + 1) * perBlock; c++) {
                if (refcounts.get(c) != 0) {
                    refcounts.setRaw(c, 0);
                }
            }
        }
        // 2. make the refcount table big enough for the whole file (plus a few new blocks)
        long neededEntries = (fileClusters + 4 * perBlock) / perBlock + 1;
        if (neededEntries > refcounts.table.length) {
            refcounts.freeHint = fileClusters;
            refcounts.growTable(neededEntries);
        }
        // 3. count
        int[] counts = countReferences("repair");
        long n = counts.length;
        if (bitmaps != null) {
            bitmaps.forEachReference((o, l) -> ref(counts, o, l));
        }
        // 4. write the counts
        refcounts.freeHint = n;
        for (long c = 0; c < n; c++) {
            long want = counts[(int) c];
            if (want > h.refcountMax) {
                throw new ImageException("'" + file.filename + "': refcount overflow while repairing cluster 0x"
                        + Long.toHexString(c << clusterBits));
            }
            if (refcounts.get(c) != want) {
                refcounts.ensureBlockFor(c);
                refcounts.setRaw(c, want);
            }
        }
        refcounts.freeHint = 0;
        // 5. fix the COPIED flags of the active tables
        long[] l1 = map.l1;
        for (int i = 0; i < l1.length; i++) {
            long l2off = l1[i] & OFFSET_MASK;
            if (l2off == 0) {
                continue;
            }
            boolean owned = refcounts.get(l2off >> clusterBits) == 1;
            long want = l2off | (owned ? OFLAG_COPIED : 0);
            if (l1[i] != want) {
                map.setL1(i, want);
            }
            if (!owned) {
                continue;
            }
            byte[] t = map.table(l2off);
            ByteBuffer tb = ByteBuffer.wrap(t);
            for (int j = 0; j < (1 << h.l2Bits); j++) {
                long e = tb.getLong(j * 8);
                if ((e & OFLAG_COMPRESSED) != 0 || (e & OFFSET_MASK) == 0) {
                    continue;
                }
                boolean one = refcounts.get((e & OFFSET_MASK) >> clusterBits) == 1;
                long we = one ? e | OFLAG_COPIED : e & ~OFLAG_COPIED;
                if (we != e) {
                    tb.putLong(j * 8, we);
                    file.write(t, j * 8, 8, l2off + j * 8L);
                }
            }
        }
        file.force(true);
    }

    private int[] ref(int[] counts, long off, long len) throws ImageException {
        if (len <= 0) {
            return counts;
        }
        long first = off >> clusterBits;
        long last = (off + len - 1) >> clusterBits;
        for (long c = first; c <= last; c++) {
            if (c < 0 || c >= counts.length) {
                throw new ImageException("'" + file.filename + "': reference to host offset 0x"
                        + Long.toHexString(c << clusterBits) + " outside the file; cannot repair");
            }
            counts[(int) c]++;
        }
        return counts;
    }

    private void countL1(int[] counts, long[] table) throws IOException {
        for (long le : table) {
            long l2off = le & OFFSET_MASK;
            if (l2off == 0) {
                continue;
            }
            ref(counts, l2off, cs);
            byte[] t = map.table(l2off);
            ByteBuffer tb = ByteBuffer.wrap(t);
            for (int j = 0; j < (1 << h.l2Bits); j++) {
                long e = tb.getLong(j * 8);
                if ((e & OFLAG_COMPRESSED) != 0) {
                    long coff = e & h.coffsetMask;
                    long nb = ((e >>> h.csizeShift) & h.csizeMask) + 1;
                    ref(counts, coff & ~511L, nb * 512);
                } else if ((e & OFFSET_MASK) != 0) {
                    ref(counts, e & OFFSET_MASK, cs);
                }
            }
        }
    }

    private void countSnapshots(int[] counts) throws IOException {
        long pos = h.snapshotsOffset;
        for (int i = 0; i < h.nbSnapshots; i++) {
            byte[] hd = new byte[40];
            file.read(hd, 0, 40, pos);
            ByteBuffer b = ByteBuffer.wrap(hd);
            long sl1Off = b.getLong(0);
            int sl1Size = b.getInt(8);
            int idLen = b.getShort(12) & 0xffff;
            int nameLen = b.getShort(14) & 0xffff;
            int extra = b.getInt(36);
            if (sl1Size < 0 || sl1Size > MAX_L1_BYTES / 8 || extra < 0 || extra > 1024) {
                throw new ImageException("'" + file.filename + "': invalid snapshot table");
            }
            ref(counts, sl1Off, (long) sl1Size * 8);
            countL1(counts, file.readLongs(sl1Off, sl1Size));
            pos += 40 + extra + idLen + nameLen;
            pos = (pos + 7) & ~7L;
        }
        ref(counts, h.snapshotsOffset, pos - h.snapshotsOffset);
    }
}
