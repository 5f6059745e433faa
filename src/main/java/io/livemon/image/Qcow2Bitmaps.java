package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The persistent dirty bitmaps of one qcow2 version 3 image opened read-write: the "bitmaps" header extension
 * (0x23852875), the bitmap directory, bitmap tables and data clusters of QEMU's docs/interop/qcow2.txt, kept the way
 * QEMU's block/qcow2-bitmap.c keeps them.
 *
 * <p>Life cycle (the image calls these with its {@code meta} lock held and, except for {@link #load}, its op write
 * lock or from its constructor):
 * <ol>
 *   <li>{@link #load}: reads and checks the directory; every bitmap that is not flagged in_use is read into memory. A
 *       bitmap already in_use (left by a process that was killed) is inconsistent: it is kept on disk exactly as it is
 *       and never used or un-flagged (QEMU reports it as inconsistent). Anything livemon cannot keep (unknown flags or
 *       type, extra data, broken directory) raises an {@link ImageException} with QEMU's text, so the image is not
 *       opened read-write rather than losing the bitmaps.</li>
 *   <li>{@link #markInUse}: before the first write, flags the loaded bitmaps in_use on disk (directory rewritten in
 *       place while the autoclear bit is off, as QEMU's update_ext_header_and_dir_in_place), so a killed process
 *       leaves them visibly inconsistent instead of silently stale.</li>
 *   <li>{@link #mark}: every guest-visible change of the node's data (write, write-zeroes, discard) sets the bits of
 *       the granules it touches in every enabled ({@code auto}) bitmap.</li>
 *   <li>{@link #store}: at close (and at a reopen read-only) writes every consistent bitmap to new data clusters and a
 *       new table, a new directory without in_use, points the header at it, then frees the old clusters.</li>
 * </ol>
 */
final class Qcow2Bitmaps {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Qcow2Bitmaps.class);
    static final int EXT_MAGIC = 0x23852875;
    /** Autoclear feature bit 0: the bitmaps extension is valid. */
    static final long AUTOCLEAR_BITMAPS = 1;

    private static final int FLAG_IN_USE = 1;
    private static final int FLAG_AUTO = 2;
    private static final int RESERVED_FLAGS = ~(FLAG_IN_USE | FLAG_AUTO);
    private static final int TYPE_DIRTY_TRACKING = 1;
    private static final long MAX_TABLE_SIZE = 0x8000000L;
    private static final long MAX_PHYS_SIZE = 0x20000000L;
    private static final int MIN_GRANULARITY_BITS = 9;
    private static final int MAX_GRANULARITY_BITS = 31;
    private static final int MAX_NAME_SIZE = 1023;
    private static final int MAX_BITMAPS = 65535;
    private static final long MAX_DIRECTORY_SIZE = 64L << 20;
    private static final long ENTRY_RESERVED = 0xff000000000001feL;
    private static final long ENTRY_OFFSET = 0x00fffffffffffe00L;
    private static final long ENTRY_ALL_ONES = 1;
    private static final int DIR_ENTRY_HEADER = 24;

    /** What the owning image lends: its file and its cluster allocator. Every call is made with its meta lock held. */
    interface Host {
        /** Reads {@code len} bytes of the file at {@code pos} (zeroes past the end). */
        byte[] read(long pos, int len) throws IOException;

        /** Writes bytes to the file at {@code pos}. */
        void write(long pos, byte[] b) throws IOException;

        /** fsync of the file. */
        void sync() throws IOException;

        /** Allocates host-contiguous clusters for {@code bytes} (refcount 1 written) and returns the offset. */
        long allocate(long bytes) throws IOException;

        /** The refcount of the cluster holding host offset {@code offset}. */
        long refcount(long offset) throws IOException;

        /**
         * How many references every host cluster gets from the image's other structures (header, L1/L2 and refcount
         * tables, guest data, internal snapshots), indexed by cluster number; clusters past the array have none.
         */
        int[] otherReferences() throws IOException;

        /** Drops one reference from every cluster of [offset, offset+bytes). */
        void free(long offset, long bytes) throws IOException;

        /** Sets or clears autoclear bit 0 in the header, then fsync. */
        void setAutoclearBit(boolean on) throws IOException;

        /** Rewrites the header with this bitmaps extension data (autoclear bit 0 set), then fsync. */
        void writeExtension(byte[] data) throws IOException;
    }

    /** The 24 bytes of the header extension. */
    record Ext(int nbBitmaps, long dirSize, long dirOffset) {
        /**
         * Parses and checks the extension as QEMU's qcow2_read_extensions does (its error texts).
         *
         * @throws ImageException with QEMU's text for a wrong length, a reserved field, a bitmap count or directory
         *     that QEMU refuses
         */
        static Ext parse(byte[] d, long clusterSize) throws ImageException {
            if (d.length != 24) {
                throw new ImageException("bitmaps_ext: Invalid extension length");
            }
            ByteBuffer b = ByteBuffer.wrap(d);
            long nb = b.getInt(0) & 0xffffffffL;
            if (b.getInt(4) != 0) {
                throw new ImageException("bitmaps_ext: Reserved field is not zero");
            }
            if (nb > MAX_BITMAPS) {
                throw new ImageException("bitmaps_ext: Image has " + nb
                        + " bitmaps, exceeding the QEMU supported maximum of " + MAX_BITMAPS);
            }
            if (nb == 0) {
                throw new ImageException("found bitmaps extension with zero bitmaps");
            }
            long off = b.getLong(16);
            if ((off & (clusterSize - 1)) != 0) {
                throw new ImageException("bitmaps_ext: invalid bitmap directory offset");
            }
            long size = b.getLong(8);
            if (size < 0 || size > MAX_DIRECTORY_SIZE) {
                throw new ImageException("bitmaps_ext: bitmap directory size (" + Long.toUnsignedString(size)
                        + ") exceeds the maximum supported size (" + MAX_DIRECTORY_SIZE + ")");
            }
            return new Ext((int) nb, size, off);
        }

        byte[] bytes() {
            return ByteBuffer.allocate(24).putInt(0, nbBitmaps).putLong(8, dirSize).putLong(16, dirOffset).array();
        }
    }

    /** One bitmap of the directory. */
    private static final class Bitmap {
        final String name;
        /** The name's bytes exactly as on disk (written back as they are, whatever their encoding). */
        final byte[] rawName;
        final int granularityBits;
        /** Flags as on disk (in_use is set by {@link #markInUse}). */
        int flags;
        /** Was in_use when loaded: kept exactly as on disk, never used, stored or un-flagged. */
        final boolean inconsistent;
        /** The auto flag: records writes. A disabled bitmap is kept unchanged. */
        final boolean enabled;
        long tableOffset;
        int tableSize;
        /** Table entries as on disk (for freeing and counting); may be null for an inconsistent bitmap. */
        long[] table;
        /** One bit per granule, bit i in word i/64 at position i%64 (QEMU's little-endian serialisation). */
        long[] bits;

        Bitmap(byte[] rawName, int granularityBits, int flags, long tableOffset, int tableSize) {
            this.rawName = rawName;
            this.name = new String(rawName, StandardCharsets.UTF_8);
            this.granularityBits = granularityBits;
            this.flags = flags;
            this.inconsistent = (flags & FLAG_IN_USE) != 0;
            this.enabled = (flags & FLAG_AUTO) != 0;
            this.tableOffset = tableOffset;
            this.tableSize = tableSize;
        }
    }

    private final String filename;
    private final long cs;
    /** Guest bytes the bits cover (the image size). Guarded by this. */
    private long size;
    /** Bitmap bits of every bitmap are guarded by this (writers on disjoint ranges share words). */
    private final List<Bitmap> list;
    private long dirOffset;
    private long dirSize;

    private Qcow2Bitmaps(String filename, long cs, long size, List<Bitmap> list, long dirOffset, long dirSize) {
        this.filename = filename;
        this.cs = cs;
        this.size = size;
        this.list = list;
        this.dirOffset = dirOffset;
        this.dirSize = dirSize;
    }

    /**
     * Reads the directory and the bits of every bitmap that is not in_use. Writes nothing.
     *
     * @param size the image's guest size in bytes
     * @throws ImageException with QEMU's text (qcow2-bitmap.c) when the directory or a bitmap is one livemon cannot
     *     keep: "Broken bitmap directory", "Bitmap extra data is not supported", "Bitmap 'NAME' doesn't satisfy the
     *     constraints", "Could not read bitmap 'NAME' from image: Invalid argument", ...
     */
    static Qcow2Bitmaps load(Host host, String filename, long cs, long size, Ext ext) throws IOException {
        if (ext.dirSize() == 0) {
            throw new ImageException("Requested bitmap directory size is zero");
        }
        byte[] dir = host.read(ext.dirOffset(), (int) ext.dirSize());
        ByteBuffer d = ByteBuffer.wrap(dir);
        List<Bitmap> list = new ArrayList<>();
        Set<String> names = new HashSet<>();
        int pos = 0;
        while (pos < dir.length) {
            if (pos + DIR_ENTRY_HEADER > dir.length) {
                throw new ImageException("Broken bitmap directory");
            }
            if (list.size() + 1 > ext.nbBitmaps()) {
                throw new ImageException("More bitmaps found than specified in header extension");
            }
            long tableOffset = d.getLong(pos);
            long tableSize = d.getInt(pos + 8) & 0xffffffffL;
            int flags = d.getInt(pos + 12);
            int type = d.get(pos + 16) & 0xff;
            int gran = d.get(pos + 17) & 0xff;
            int nameSize = d.getShort(pos + 18) & 0xffff;
            long extra = d.getInt(pos + 20) & 0xffffffffL;
            long entrySize = (DIR_ENTRY_HEADER + nameSize + extra + 7) & ~7L;
            if (pos + entrySize > dir.length) {
                throw new ImageException("Broken bitmap directory");
            }
            if (extra != 0) {
                throw new ImageException("Bitmap extra data is not supported");
            }
            byte[] rawName = Arrays.copyOfRange(dir, pos + DIR_ENTRY_HEADER, pos + DIR_ENTRY_HEADER + nameSize);
            String name = new String(rawName, StandardCharsets.UTF_8);
            long phys = tableSize * cs;
            boolean bad = tableSize == 0 || tableOffset == 0 || (tableOffset & (cs - 1)) != 0
                    || tableSize > MAX_TABLE_SIZE || gran > MAX_GRANULARITY_BITS || gran < MIN_GRANULARITY_BITS
                    || (flags & RESERVED_FLAGS) != 0 || nameSize > MAX_NAME_SIZE || type != TYPE_DIRTY_TRACKING
                    || phys > MAX_PHYS_SIZE
                    || ((flags & FLAG_IN_USE) == 0 && size > ((phys * 8) << gran));
            if (bad) {
                throw new ImageException("Bitmap '" + name + "' doesn't satisfy the constraints");
            }
            if (!names.add(java.util.HexFormat.of().formatHex(rawName))) {
                throw new ImageException("Bitmap already exists: " + name);
            }
            list.add(new Bitmap(rawName, gran, flags, tableOffset, (int) tableSize));
            pos += (int) entrySize;
        }
        if (list.size() != ext.nbBitmaps()) {
            throw new ImageException("Less bitmaps found than specified in header extension");
        }
        Qcow2Bitmaps r = new Qcow2Bitmaps(filename, cs, size, list, ext.dirOffset(), ext.dirSize());
        for (Bitmap b : list) {
            r.loadTable(host, b);
            if (!b.inconsistent) {
                r.loadBits(host, b);
            }
        }
        return r;
    }

    /**
     * The directory's entries as qemu-img info lists them, read from disk without checking the bitmaps themselves.
     *
     * @throws ImageException "Broken bitmap directory" (QEMU's text) when the entries do not fit the directory
     */
    static List<BitmapInfo> describe(Host host, Ext ext) throws IOException {
        byte[] dir = host.read(ext.dirOffset(), (int) ext.dirSize());
        ByteBuffer d = ByteBuffer.wrap(dir);
        List<BitmapInfo> r = new ArrayList<>();
        int pos = 0;
        while (pos < dir.length && r.size() < ext.nbBitmaps()) {
            if (pos + DIR_ENTRY_HEADER > dir.length) {
                throw new ImageException("Broken bitmap directory");
            }
            int flags = d.getInt(pos + 12);
            int gran = d.get(pos + 17) & 0xff;
            int nameSize = d.getShort(pos + 18) & 0xffff;
            long extra = d.getInt(pos + 20) & 0xffffffffL;
            long entrySize = (DIR_ENTRY_HEADER + nameSize + extra + 7) & ~7L;
            if (pos + entrySize > dir.length || gran > 63) {
                throw new ImageException("Broken bitmap directory");
            }
            List<String> f = new ArrayList<>();
            if ((flags & FLAG_IN_USE) != 0) {
                f.add("in-use");
            }
            if ((flags & FLAG_AUTO) != 0) {
                f.add("auto");
            }
            String name = new String(dir, (int) (pos + DIR_ENTRY_HEADER + extra), nameSize, StandardCharsets.UTF_8);
            r.add(new BitmapInfo(name, 1L << gran, List.copyOf(f)));
            pos += (int) entrySize;
        }
        return r;
    }

    /** Number of bitmap table entries (data clusters) for {@code bytes} of guest data at {@code 2^gran}. */
    private long tableSizeFor(long bytes, int gran) {
        long nbits = (bytes + (1L << gran) - 1) >>> gran;
        return (nbits + cs * 8 - 1) / (cs * 8);
    }

    private static long nbits(long bytes, int gran) {
        return (bytes + (1L << gran) - 1) >>> gran;
    }

    private void loadTable(Host host, Bitmap b) throws IOException {
        byte[] raw = host.read(b.tableOffset, b.tableSize * 8);
        long[] t = new long[b.tableSize];
        ByteBuffer.wrap(raw).asLongBuffer().get(t);
        for (long e : t) {
            long off = e & ENTRY_OFFSET;
            boolean bad = (e & ENTRY_RESERVED) != 0
                    || (off != 0 && ((e & ENTRY_ALL_ONES) != 0 || (off & (cs - 1)) != 0));
            if (bad) {
                if (b.inconsistent) {
                    b.table = new long[0]; // QEMU never reads an in_use bitmap's table; only its own clusters count
                    return;
                }
                throw new ImageException("Could not read bitmap_table table from image for bitmap '" + b.name
                        + "': Invalid argument");
            }
        }
        b.table = t;
    }

    private void loadBits(Host host, Bitmap b) throws IOException {
        if (tableSizeFor(size, b.granularityBits) != b.tableSize) {
            throw new ImageException("Could not read bitmap '" + b.name + "' from image: Invalid argument");
        }
        long nbits = nbits(size, b.granularityBits);
        long[] bits = new long[(int) ((nbits + 63) >>> 6)];
        long perCluster = cs * 8;
        for (int i = 0; i < b.tableSize; i++) {
            long e = b.table[i];
            long off = e & ENTRY_OFFSET;
            long first = i * perCluster;
            if (off == 0) {
                if ((e & ENTRY_ALL_ONES) != 0) {
                    setRange(bits, first, Math.min(nbits, first + perCluster) - 1);
                }
                continue;
            }
            ByteBuffer data = ByteBuffer.wrap(host.read(off, (int) cs)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            int w0 = (int) (first >>> 6);
            for (int k = 0; k < cs / 8 && w0 + k < bits.length; k++) {
                bits[w0 + k] = data.getLong(k * 8);
            }
        }
        int tail = (int) (nbits & 63);
        if (tail != 0 && bits.length > 0) {
            bits[bits.length - 1] &= (1L << tail) - 1; // bits past the image end do not exist
        }
        b.bits = bits;
    }

    private static void setRange(long[] bits, long first, long last) {
        for (long i = first; i <= last; ) {
            int w = (int) (i >>> 6);
            int lo = (int) (i & 63);
            int hi = (int) Math.min(63, lo + (last - i));
            long m = (hi == 63 ? -1L : (1L << (hi + 1)) - 1) & (-1L << lo);
            bits[w] |= m;
            i += hi - lo + 1;
        }
    }

    /** Whether some bitmap will be written back (consistent ones); the in_use flag only concerns those. */
    private boolean anyConsistent() {
        for (Bitmap b : list) {
            if (!b.inconsistent) {
                return true;
            }
        }
        return false;
    }

    /**
     * Flags every consistent bitmap in_use on disk before the first write can happen: autoclear bit 0 off (so a crash
     * in between leaves the bitmaps invalid, never wrong), directory rewritten in place, bit on again.
     */
    void markInUse(Host host) throws IOException {
        if (!anyConsistent()) {
            return;
        }
        for (Bitmap b : list) {
            b.flags |= FLAG_IN_USE;
        }
        byte[] dir = directory();
        if (dir.length != dirSize) {
            // cannot happen: entries are written back with the same name bytes and no extra data
            throw new ImageException("Broken bitmap directory");
        }
        host.setAutoclearBit(false);
        host.write(dirOffset, dir);
        host.sync();
        host.setAutoclearBit(true);
    }

    private byte[] directory() {
        int total = 0;
        for (Bitmap b : list) {
            total += (DIR_ENTRY_HEADER + b.rawName.length + 7) & ~7;
        }
        ByteBuffer d = ByteBuffer.allocate(total);
        int pos = 0;
        for (Bitmap b : list) {
            byte[] n = b.rawName;
            d.putLong(pos, b.tableOffset).putInt(pos + 8, b.tableSize).putInt(pos + 12, b.flags);
            d.put(pos + 16, (byte) TYPE_DIRTY_TRACKING).put(pos + 17, (byte) b.granularityBits);
            d.putShort(pos + 18, (short) n.length).putInt(pos + 20, 0);
            d.put(pos + DIR_ENTRY_HEADER, n);
            pos += (DIR_ENTRY_HEADER + n.length + 7) & ~7;
        }
        return d.array();
    }

    /**
     * Records a change of guest bytes [offset, offset+len) in every enabled consistent bitmap: every granule the range
     * touches becomes dirty (QEMU's bdrv_set_dirty). Called before the change is made, so a failed request leaves the
     * range dirty too, as in QEMU.
     */
    synchronized void mark(long offset, long len) {
        if (len <= 0) {
            return;
        }
        for (Bitmap b : list) {
            if (b.inconsistent || !b.enabled || b.bits == null) {
                continue;
            }
            long nbits = nbits(size, b.granularityBits);
            long first = offset >>> b.granularityBits;
            long last = Math.min(nbits - 1, (offset + len - 1) >>> b.granularityBits);
            if (first <= last) {
                setRange(b.bits, first, last);
            }
        }
    }

    /**
     * Follows a resize of the image (QEMU's bdrv_dirty_bitmap_truncate): bits past a new smaller end go, a grown
     * area starts clean.
     *
     * @throws ImageException "Bitmap 'NAME' is inconsistent and cannot be used" when an in_use bitmap cannot follow
     *     (QEMU's qcow2_truncate_bitmaps_check), or QEMU's "Too much space will be occupied by the bitmap. Use larger
     *     granularity" when a bitmap would outgrow the format's limits
     */
    synchronized void checkResize(long newSize) throws ImageException {
        for (Bitmap b : list) {
            if (b.inconsistent) {
                throw new ImageException("Bitmap '" + b.name + "' is inconsistent and cannot be used");
            }
            long bytes = (nbits(newSize, b.granularityBits) + 7) / 8;
            if (bytes > MAX_PHYS_SIZE || bytes > MAX_TABLE_SIZE * cs) {
                throw new ImageException("Bitmap '" + b.name + "' doesn't satisfy the constraints: Too much space "
                        + "will be occupied by the bitmap. Use larger granularity");
            }
        }
    }

    /** Applies a resize that {@link #checkResize} accepted. */
    synchronized void resize(long newSize) {
        for (Bitmap b : list) {
            if (b.bits == null) {
                continue;
            }
            long nbits = nbits(newSize, b.granularityBits);
            long[] n = Arrays.copyOf(b.bits, (int) ((nbits + 63) >>> 6));
            int tail = (int) (nbits & 63);
            if (tail != 0 && n.length > 0) {
                n[n.length - 1] &= (1L << tail) - 1;
            }
            b.bits = n;
        }
        size = newSize;
    }

    /**
     * Writes every consistent bitmap back (QEMU's qcow2_store_persistent_dirty_bitmaps): data clusters for the
     * non-zero parts, a new table, a new directory without in_use (auto kept for enabled ones), the header pointed at
     * it, then the old directory, tables and data clusters freed. In_use bitmaps stay as they are. On an error before
     * the header is updated, the image keeps the old directory (bitmaps in_use) and at worst leaks clusters.
     */
    synchronized void store(Host host) throws IOException {
        if (!anyConsistent()) {
            return; // only in_use bitmaps, kept as they are: nothing to write (QEMU's need_write is false too)
        }
        List<long[]> allocated = new ArrayList<>(); // {offset, bytes}: freed if the store fails before the switch
        long[][] newTables = new long[list.size()][];
        long[] newTableOffsets = new long[list.size()];
        long newDirOffset;
        byte[] dirBytes;
        int[] oldFlags = new int[list.size()];
        long[] oldTableOffsets = new long[list.size()];
        int[] oldTableSizes = new int[list.size()];
        for (int k = 0; k < list.size(); k++) {
            oldFlags[k] = list.get(k).flags;
            oldTableOffsets[k] = list.get(k).tableOffset;
            oldTableSizes[k] = list.get(k).tableSize;
        }
        try {
            long perCluster = cs * 8;
            for (int k = 0; k < list.size(); k++) {
                Bitmap b = list.get(k);
                if (b.inconsistent) {
                    continue;
                }
                int tsz = (int) Math.max(1, tableSizeFor(size, b.granularityBits));
                long[] t = new long[tsz];
                ByteBuffer buf = ByteBuffer.allocate((int) cs).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                int wordsPerCluster = (int) (cs / 8);
                for (int i = 0; i < tsz; i++) {
                    int w0 = (int) (i * perCluster >>> 6);
                    int w1 = Math.min(b.bits.length, w0 + wordsPerCluster);
                    boolean any = false;
                    for (int w = w0; w < w1 && !any; w++) {
                        any = b.bits[w] != 0;
                    }
                    if (!any) {
                        continue; // an all-zero part needs no cluster (entry 0)
                    }
                    Arrays.fill(buf.array(), (byte) 0);
                    for (int w = w0; w < w1; w++) {
                        buf.putLong((w - w0) * 8, b.bits[w]);
                    }
                    long off = host.allocate(cs);
                    allocated.add(new long[] {off, cs});
                    host.write(off, buf.array());
                    t[i] = off;
                }
                ByteBuffer tb = ByteBuffer.allocate(tsz * 8);
                tb.asLongBuffer().put(t);
                long toff = host.allocate(tsz * 8L);
                allocated.add(new long[] {toff, tsz * 8L});
                host.write(toff, tb.array());
                newTables[k] = t;
                newTableOffsets[k] = toff;
            }
            for (int k = 0; k < list.size(); k++) {
                Bitmap b = list.get(k);
                if (!b.inconsistent) {
                    b.tableOffset = newTableOffsets[k];
                    b.tableSize = newTables[k].length;
                    b.flags = b.enabled ? FLAG_AUTO : 0;
                }
            }
            dirBytes = directory();
            newDirOffset = host.allocate(dirBytes.length);
            allocated.add(new long[] {newDirOffset, dirBytes.length});
            host.write(newDirOffset, dirBytes);
            host.sync();
            host.writeExtension(new Ext(list.size(), dirBytes.length, newDirOffset).bytes());
        } catch (IOException | RuntimeException e) {
            for (int k = 0; k < list.size(); k++) {
                Bitmap b = list.get(k);
                b.flags = oldFlags[k];
                b.tableOffset = oldTableOffsets[k];
                b.tableSize = oldTableSizes[k];
            }
            for (long[] a : allocated) {
                try {
                    host.free(a[0], a[1]);
                } catch (IOException | RuntimeException ignored) {
                    // the cluster leaks; the old directory is still the one the header points at
                }
            }
            throw e;
        }
        // the header points at the new directory: the old structures are garbage now
        long oldDir = dirOffset;
        long oldDirSize = dirSize;
        dirOffset = newDirOffset;
        dirSize = dirBytes.length;
        freeQuietly(host, oldDir, oldDirSize);
        for (int k = 0; k < list.size(); k++) {
            Bitmap b = list.get(k);
            if (b.inconsistent) {
                continue;
            }
            if (b.table != null) {
                for (long e : b.table) {
                    if ((e & ENTRY_OFFSET) != 0) {
                        freeQuietly(host, e & ENTRY_OFFSET, cs);
                    }
                }
            }
            freeQuietly(host, oldTableOffsets[k], oldTableSizes[k] * 8L);
            b.table = newTables[k];
        }
    }

    private void freeQuietly(Host host, long off, long bytes) {
        try {
            host.free(off, bytes);
        } catch (IOException | RuntimeException e) {
            // a refcount that would go negative means someone else corrupted it; leaking is the safe outcome
            LOG.warn("{}: could not free old bitmap clusters at 0x{}: {}", filename, Long.toHexString(off),
                    e.getMessage());
        }
    }

    /**
     * Refuses bitmaps whose clusters are not owned by them alone: everything {@link #store} will free (the directory,
     * the tables and data clusters of the consistent bitmaps) must have refcount 1, as QEMU allocates them. A table
     * offset that a corrupt directory points at a guest data cluster or a table would otherwise be freed at close
     * and its cluster reused while still in use. Call with refcounts that are up to date (not on a dirty image
     * before its repair).
     *
     * @throws ImageException naming the bitmap and the cluster
     */
    void checkOwnership(Host host) throws IOException {
        int[] others = host.otherReferences();
        Set<Long> seen = new HashSet<>();
        checkOwned(host, others, seen, null, dirOffset, dirSize);
        for (Bitmap b : list) {
            if (b.inconsistent) {
                continue; // never freed by livemon
            }
            checkOwned(host, others, seen, b, b.tableOffset, b.tableSize * 8L);
            for (long e : b.table) {
                if ((e & ENTRY_OFFSET) != 0) {
                    checkOwned(host, others, seen, b, e & ENTRY_OFFSET, cs);
                }
            }
        }
    }

    private void checkOwned(Host host, int[] others, Set<Long> seen, Bitmap b, long off, long bytes)
            throws IOException {
        int shift = Long.numberOfTrailingZeros(cs);
        for (long c = off & ~(cs - 1); c < off + bytes; c += cs) {
            long idx = c >>> shift;
            long rc = host.refcount(c);
            boolean shared = (idx < others.length && others[(int) idx] != 0) || !seen.add(idx);
            if (rc != 1 || shared) {
                throw new ImageException("'" + filename + "': " + (b == null ? "the bitmap directory"
                        : "bitmap '" + b.name + "'") + " uses the cluster at 0x" + Long.toHexString(c) + ", which "
                        + (shared ? "something else uses too" : "has refcount " + rc + " instead of 1")
                        + " (image is corrupt); livemon will not free it at close");
            }
        }
    }

    /** Reports every cluster range the bitmaps reference (directory, tables, data), for a refcount rebuild. */
    void forEachReference(RangeSink sink) throws ImageException {
        sink.ref(dirOffset, dirSize);
        for (Bitmap b : list) {
            if (b.table == null) {
                continue;
            }
            sink.ref(b.tableOffset, b.tableSize * 8L);
            for (long e : b.table) {
                if ((e & ENTRY_OFFSET) != 0) {
                    sink.ref(e & ENTRY_OFFSET, cs);
                }
            }
        }
    }

    /** Receives one referenced host range. */
    interface RangeSink {
        void ref(long offset, long bytes) throws ImageException;
    }
}
