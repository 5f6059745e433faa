package io.livemon.image;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.UnaryOperator;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * A qcow2 image layer (version 2 and 3). See QEMU's docs/interop/qcow2.txt for the format.
 *
 * <p>Metadata caches are write-through: every L1/L2/refcount change is written to the file immediately, in an order
 * that keeps the image consistent after a crash (data before the L2 entry, refcount increments before the pointer,
 * decrements after the pointer is gone). At worst, clusters leak.
 */
public final class Qcow2Image implements Image {
    private static final Logger LOG = LoggerFactory.getLogger(Qcow2Image.class);

    static final int MAGIC = 0x514649fb;
    static final long OFLAG_COPIED = 1L << 63;
    static final long OFLAG_COMPRESSED = 1L << 62;
    static final long OFLAG_ZERO = 1L;
    static final long OFFSET_MASK = 0x00fffffffffffe00L;
    static final long REFT_OFFSET_MASK = 0xfffffffffffffe00L;
    static final long MAX_L1_BYTES = 32L << 20;
    static final long MAX_REFTABLE_BYTES = 8L << 20;
    static final int EXT_BACKING_FORMAT = 0xE2792ACA;
    static final int EXT_FEATURE_TABLE = 0x6803f857;
    static final long INCOMPAT_DIRTY = 1;
    static final long INCOMPAT_CORRUPT = 2;
    static final long INCOMPAT_DATA_FILE = 4;
    static final long INCOMPAT_COMPRESSION = 8;
    static final long INCOMPAT_EXTL2 = 16;
    static final long COMPAT_LAZY = 1;

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

    /** A header extension kept as is. */
    private record Ext(int type, byte[] data) {
    }

    /** An LRU map of table offset to table bytes. */
    private static final class TableCache extends LinkedHashMap<Long, byte[]> {
        private final int capacity;

        TableCache(int capacity) {
            super(16, 0.75f, true);
            this.capacity = Math.max(1, capacity);
        }

        @Override
        protected boolean removeEldestEntry(Map.Entry<Long, byte[]> eldest) {
            return size() > capacity;
        }
    }

    private final Path path;
    private final String filename;
    private final Options options;

    private final ReentrantReadWriteLock opLock = new ReentrantReadWriteLock(); // guards the image shape: guest I/O holds read; resize/changeBackingFile/reopen/close hold write
    private final RangeLock rangeLock = new RangeLock(); // serialises guest requests on overlapping cluster-aligned ranges
    private final ReentrantLock meta = new ReentrantLock(); // guards l1, rt, both caches, refcounts, allocation state (freeHint, hostEnd), header fields and dirty flag

    private volatile FileChannel ch;
    /** End (guest bytes) of the highest write, zero write or discard since open: QEMU's wr_highest_offset. */
    private final java.util.concurrent.atomic.AtomicLong guestWriteEnd = new java.util.concurrent.atomic.AtomicLong();
    /** End (host-file bytes) of the highest write into the file since open: the file node's wr_highest_offset. */
    private final java.util.concurrent.atomic.AtomicLong hostWriteEnd = new java.util.concurrent.atomic.AtomicLong();
    /** The file's own channel under any wrapper (blkdebug, tests): whether it is open tells the lock registry. */
    private volatile FileChannel rawCh;
    /** This image's claim in QEMU's locking protocol (see {@link ImageLocks}); released at close. */
    private final ImageLocks.Lease lease;
    private volatile boolean readOnly;
    private volatile Image backing;
    private volatile long size;
    private volatile boolean closed;

    // immutable after open
    private final int version;
    private final int clusterBits;
    private final long cs;
    private final int l2Bits;
    private final int refcountOrder;
    private final int refcountBits;
    private final long refcountMax;
    private final int rbBits;
    private final int csizeShift;
    private final long csizeMask;
    private final long coffsetMask;
    private final int headerLength;
    private final byte[] rawHeader;
    private final int nbSnapshots;
    private final long snapshotsOffset;

    // guarded by meta
    private long incompat;
    private long compat;
    private long autoclear;
    private String backingFile;
    private String backingFormat;
    private final List<Ext> otherExts = new ArrayList<>();
    private int headerUsed;
    private long[] l1;
    private long l1Offset;
    private long[] rt;
    private long rtOffset;
    private int rtClusters;
    private final TableCache l2Cache;
    private final TableCache rbCache;
    private long freeHint;
    private long hostEnd;
    private boolean dirtySetByUs;
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
        FileChannel c = openChannel(path, filename, readOnly);
        this.rawCh = c;
        try {
            this.lease = ImageLocks.acquire(path, filename, !readOnly, () -> !closed && rawCh.isOpen());
        } catch (ImageException e) {
            ImageLocks.close(c, path);
            throw e;
        }
        if (channelWrapper != null) {
            c = channelWrapper.apply(c);
        }
        this.ch = c;
        boolean ok = false;
        try {
            long fileSize = c.size();
            byte[] h = new byte[(int) Math.min(fileSize, 4096)];
            readAt(c, h, 0, h.length, 0);
            ByteBuffer hb = ByteBuffer.wrap(h);
            if (h.length < 4 || hb.getInt(0) != MAGIC) {
                throw new ImageException("Image is not in qcow2 format");
            }
            if (h.length < 72) {
                throw new ImageException("Could not read qcow2 header: Input/output error");
            }
            version = hb.getInt(4);
            if (version != 2 && version != 3) {
                throw new ImageException("Unsupported qcow2 version " + version);
            }
            long backingOffset = hb.getLong(8);
            long backingSize = hb.getInt(16) & 0xffffffffL; // u32: a value >= 2^31 must not become negative
            clusterBits = hb.getInt(20);
            if (clusterBits < 9 || clusterBits > 21) {
                throw new ImageException("Unsupported cluster size: 2^" + clusterBits);
            }
            cs = 1L << clusterBits;
            l2Bits = clusterBits - 3;
            long vsize = hb.getLong(24);
            int crypt = hb.getInt(32);
            long l1Size = hb.getInt(36) & 0xffffffffL;
            l1Offset = hb.getLong(40);
            rtOffset = hb.getLong(48);
            long rtc = hb.getInt(56) & 0xffffffffL;
            nbSnapshots = hb.getInt(60);
            snapshotsOffset = hb.getLong(64);
            if (version == 3) {
                if (h.length < 104) {
                    throw new ImageException("qcow2 header too short");
                }
                incompat = hb.getLong(72);
                compat = hb.getLong(80);
                autoclear = hb.getLong(88);
                refcountOrder = hb.getInt(96);
                headerLength = hb.getInt(100);
                if (headerLength < 104) {
                    throw new ImageException("qcow2 header too short");
                }
                if (headerLength > cs) {
                    throw new ImageException("qcow2 header exceeds cluster size");
                }
            } else {
                incompat = 0;
                compat = 0;
                autoclear = 0;
                refcountOrder = 4;
                headerLength = 72;
            }
            byte[] header = new byte[(int) Math.min(cs, fileSize)];
            readAt(c, header, 0, header.length, 0);
            rawHeader = Arrays.copyOf(header, headerLength);
            int compressionType = version == 3 && headerLength > 104 ? header[104] & 0xff : 0;
            List<String> unsupported = new ArrayList<>();
            if ((incompat & INCOMPAT_DATA_FILE) != 0) {
                unsupported.add("external data file");
            }
            if ((incompat & INCOMPAT_COMPRESSION) != 0 || compressionType != 0) {
                unsupported.add("compression type" + (compressionType == 1 ? " (zstd)" : " (" + compressionType + ")"));
            }
            if ((incompat & INCOMPAT_EXTL2) != 0) {
                unsupported.add("extended L2 entries");
            }
            long unknown = incompat & ~0x1fL;
            if (unknown != 0) {
                unsupported.add("Unknown incompatible feature: " + Long.toHexString(unknown));
            }
            if (!unsupported.isEmpty()) {
                throw new ImageException("Unsupported qcow2 feature(s): " + String.join(", ", unsupported));
            }
            if (crypt != 0) {
                throw new ImageException("Unsupported qcow2 feature(s): encryption (crypt_method " + crypt + ")");
            }
            if (refcountOrder > 6 || refcountOrder < 0) {
                throw new ImageException("Reference count entry width too large; may not exceed 64 bits");
            }
            refcountBits = 1 << refcountOrder;
            refcountMax = refcountBits == 64 ? Long.MAX_VALUE : (1L << refcountBits) - 1;
            rbBits = clusterBits + 3 - refcountOrder;
            csizeShift = 62 - (clusterBits - 8);
            csizeMask = (1L << (clusterBits - 8)) - 1;
            coffsetMask = (1L << csizeShift) - 1;
            if ((incompat & INCOMPAT_CORRUPT) != 0 && !readOnly) {
                throw new ImageException("qcow2: Image is corrupt; cannot be opened read/write");
            }
            // backing file name
            if (backingOffset != 0) {
                if (backingSize > 1023) {
                    throw new ImageException("Backing file name too long");
                }
                if (backingOffset < 0 || backingOffset > cs || backingOffset + backingSize > cs
                        || backingOffset + backingSize > header.length) {
                    throw new ImageException("Invalid backing file offset");
                }
                backingFile = backingSize == 0 ? null
                        : cString(header, (int) backingOffset, (int) backingSize);
            }
            // header extensions
            int pos = headerLength;
            int limit = backingOffset != 0 ? (int) backingOffset : header.length;
            while (pos + 8 <= limit) {
                int type = ByteBuffer.wrap(header, pos, 8).getInt();
                long len = ByteBuffer.wrap(header, pos + 4, 4).getInt() & 0xffffffffL;
                if (type == 0) {
                    break;
                }
                if (pos + 8 + len > limit) {
                    throw new ImageException("Invalid header extension 0x" + Integer.toHexString(type)
                            + ": length " + len + " exceeds the header area");
                }
                byte[] data = Arrays.copyOfRange(header, pos + 8, pos + 8 + (int) len);
                if (type == EXT_BACKING_FORMAT) {
                    if (len > 1023) {
                        throw new ImageException("ERROR: ext_backing_format: len=" + len + " too large (>=1023)");
                    }
                    backingFormat = cString(data, 0, data.length);
                } else {
                    otherExts.add(new Ext(type, data));
                }
                pos += 8 + (int) ((len + 7) & ~7L);
            }
            headerUsed = pos;
            // L1 table
            if (l1Size > MAX_L1_BYTES / 8) {
                throw new ImageException("Active L1 table too large");
            }
            long l2Coverage = cs * (cs / 8);
            // QEMU's qcow2_do_open: the L1 index just past the disk's end (header size read as unsigned, rounded
            // up) must fit an int ("Image is too big"), then the L1 table must reach it. Computed without overflow:
            // a size near 2^63 must not wrap round and pass.
            long l1Needed = Long.divideUnsigned(vsize, l2Coverage)
                    + (Long.remainderUnsigned(vsize, l2Coverage) != 0 ? 1 : 0);
            if (l1Needed > Integer.MAX_VALUE) {
                throw new ImageException("Image is too big");
            }
            if (l1Needed > l1Size) {
                throw new ImageException("L1 table is too small");
            }
            if (l1Size > 0) {
                checkTable("L1 table", l1Offset, l1Size * 8, fileSize, "Invalid L1 table offset");
            }
            if (rtc > MAX_REFTABLE_BYTES / cs || rtc == 0) {
                throw new ImageException(rtc == 0 ? "Image does not contain a reference count table"
                        : "Reference count table too large");
            }
            checkTable("reference count table", rtOffset, rtc * cs, fileSize,
                    "Invalid reference count table offset");
            if (nbSnapshots < 0 || nbSnapshots > 65536) {
                throw new ImageException("Too many snapshots");
            }
            if (nbSnapshots > 0 && ((snapshotsOffset & (cs - 1)) != 0 || snapshotsOffset <= 0
                    || snapshotsOffset >= fileSize)) {
                throw new ImageException("Invalid snapshot table offset");
            }
            rtClusters = (int) rtc;
            size = vsize & ~511L; // QEMU counts whole 512-byte sectors (total_sectors = size / 512)
            l1 = readLongs(c, l1Offset, (int) l1Size);
            rt = readLongs(c, rtOffset, (int) (rtc * cs / 8));
            l2Cache = new TableCache((int) Math.max(1, this.options.l2CacheBytes() / cs));
            rbCache = new TableCache((int) Math.max(1, this.options.refcountCacheBytes() / cs));
            hostEnd = (fileSize + cs - 1) >> clusterBits;
            freeHint = 0;
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
                    if ((incompat & INCOMPAT_DIRTY) != 0) {
                        LOG.info("{}: image is dirty, rebuilding refcounts", filename);
                        rebuildRefcounts();
                        writeIncompat(incompat & ~INCOMPAT_DIRTY);
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
                c.close();
                lease.release(); // re-takes the locks of the file's other images, which the close dropped
            }
        }
    }

    /**
     * A name stored in the header, cut at its first NUL byte as QEMU's C strings are (a NUL inside a backing file
     * name used to reach Path.resolve and fail there with an InvalidPathException instead of a clean error).
     */
    private static String cString(byte[] b, int off, int len) {
        int n = 0;
        while (n < len && b[off + n] != 0) {
            n++;
        }
        return new String(b, off, n, StandardCharsets.UTF_8);
    }

    private void checkTable(String what, long off, long len, long fileSize, String msg) throws ImageException {
        if ((off & (cs - 1)) != 0 || off <= 0 || len < 0) {
            throw new ImageException(msg);
        }
        if (off + len > fileSize || off + len < 0) {
            throw new ImageException(msg + ": " + what + " at 0x" + Long.toHexString(off)
                    + " extends past the end of '" + filename + "'");
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

    // ------------------------------------------------------------------ low level I/O

    static FileChannel openChannel(Path path, String filename, boolean readOnly) throws ImageException {
        try {
            if (Files.isDirectory(path)) {
                throw new ImageException("Could not open '" + filename + "': Is a directory");
            }
            return readOnly ? FileChannel.open(path, StandardOpenOption.READ)
                    : FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (NoSuchFileException e) {
            throw new ImageException("Could not open '" + filename + "': No such file or directory");
        } catch (AccessDeniedException e) {
            throw new ImageException("Could not open '" + filename + "': Permission denied");
        } catch (ImageException e) {
            throw e;
        } catch (IOException e) {
            throw new ImageException("Could not open '" + filename + "': " + e.getMessage(), e);
        }
    }

    /** Reads fully; bytes past the end of the file read as zeroes. */
    static void readAt(FileChannel c, byte[] b, int off, int len, long pos) throws IOException {
        readAt(c, ByteBuffer.wrap(b), off, len, pos);
    }

    /**
     * Reads {@code len} bytes at {@code pos} into {@code b} at the absolute index {@code off} (position and limit of
     * {@code b} are not changed); bytes past the end of the file read as zeroes. A direct {@code b} is read into
     * without an intermediate copy.
     */
    static void readAt(FileChannel c, ByteBuffer b, int off, int len, long pos) throws IOException {
        for (int done = 0; done < len; ) {
            ByteBuffer bb = slice(b, off + done, Math.min(IO_PIECE, len - done));
            while (bb.hasRemaining()) {
                int n = c.read(bb, pos + done + bb.position());
                if (n < 0) {
                    zero(b, off + done + bb.position(), len - done - bb.position());
                    return;
                }
            }
            done += bb.capacity();
        }
    }

    /**
     * Largest single read or write system call for bulk data. The kernel here runs without preemption, so one
     * 8 MiB page-cache copy keeps a CPU for milliseconds; 1 MiB pieces let the monitor thread in between (two
     * unthrottled streams on two cores) at no measurable cost in throughput.
     */
    static final int IO_PIECE = 1 << 20;

    /** Writes {@code bb}'s remaining bytes at {@code pos} in {@link #IO_PIECE} system calls. */
    static void writeInPieces(FileChannel c, ByteBuffer bb, long pos) throws IOException {
        int len = bb.remaining();
        int base = bb.position();
        for (int done = 0; done < len; ) {
            int k = Math.min(IO_PIECE, len - done);
            writeFully(c, slice(bb, base + done, k), pos + done);
            done += k;
        }
    }

    /** A view of {@code b}'s bytes [off, off+len) (absolute indexes), positioned at 0. */
    static ByteBuffer slice(ByteBuffer b, int off, int len) {
        return b.duplicate().limit(off + len).position(off).slice();
    }

    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(64 << 10).asReadOnlyBuffer();

    /** Zeroes {@code b}'s bytes [off, off+len) (absolute indexes). */
    static void zero(ByteBuffer b, int off, int len) {
        if (b.hasArray()) {
            Arrays.fill(b.array(), b.arrayOffset() + off, b.arrayOffset() + off + len, (byte) 0);
            return;
        }
        while (len > 0) {
            int n = Math.min(len, ZEROS.capacity());
            b.put(off, ZEROS, 0, n);
            off += n;
            len -= n;
        }
    }

    static void writeFully(FileChannel c, ByteBuffer bb, long pos) throws IOException {
        while (bb.hasRemaining()) {
            pos += c.write(bb, pos);
        }
    }

    private void writeAt(byte[] b, int off, int len, long pos) throws IOException {
        writeHost(ByteBuffer.wrap(b, off, len), pos);
    }

    /** Every write into the image file goes through here (or {@link #writeHostInPieces}): it is counted. */
    private void writeHost(ByteBuffer bb, long pos) throws IOException {
        long end = pos + bb.remaining();
        writeFully(ch, bb, pos);
        hostWriteEnd.accumulateAndGet(end, Math::max);
    }

    private void writeHostInPieces(ByteBuffer bb, long pos) throws IOException {
        long end = pos + bb.remaining();
        writeInPieces(ch, bb, pos);
        hostWriteEnd.accumulateAndGet(end, Math::max);
    }

    @Override
    public long highestWriteEnd() {
        return guestWriteEnd.get();
    }

    @Override
    public long highestHostWriteEnd() {
        return hostWriteEnd.get();
    }

    private static long[] readLongs(FileChannel c, long off, int n) throws IOException {
        byte[] b = new byte[n * 8];
        readAt(c, b, 0, b.length, off);
        long[] r = new long[n];
        ByteBuffer.wrap(b).asLongBuffer().get(r);
        return r;
    }

    private void writeLong(long pos, long v) throws IOException {
        writeHost(ByteBuffer.allocate(8).putLong(0, v), pos);
    }

    private void writeHeaderLong(int fieldOffset, long v) throws IOException {
        writeLong(fieldOffset, v);
    }

    private void syncMeta() throws IOException {
        if (options.syncMetadata()) {
            ch.force(false);
        }
    }

    // ------------------------------------------------------------------ refcounts (meta held)

    private long getRc(byte[] b, long idx) {
        int i = (int) idx;
        switch (refcountOrder) {
            case 0, 1, 2: {
                int bits = refcountBits;
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
        switch (refcountOrder) {
            case 0, 1, 2: {
                int bits = refcountBits;
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
        return Math.max(1, refcountBits / 8);
    }

    private byte[] loadTable(TableCache cache, long off, String what) throws IOException {
        byte[] b = cache.get(off);
        if (b != null) {
            return b;
        }
        long fileSize = ch.size();
        if ((off & (cs - 1)) != 0 || off <= 0 || off >= fileSize) {
            throw new ImageException("'" + filename + "': " + what + " offset 0x" + Long.toHexString(off)
                    + (off >= fileSize ? " is outside the file" : " is invalid (unaligned or in the header)"));
        }
        b = new byte[(int) cs];
        readAt(ch, b, 0, b.length, off);
        cache.put(off, b);
        return b;
    }

    private byte[] refblock(long off) throws IOException {
        return loadTable(rbCache, off, "refcount block");
    }

    private byte[] l2(long off) throws IOException {
        return loadTable(l2Cache, off, "L2 table");
    }

    long getRefcount(long cluster) throws IOException {
        long idx = cluster >>> rbBits;
        if (idx >= rt.length) {
            return 0;
        }
        long off = rt[(int) idx] & REFT_OFFSET_MASK;
        if (off == 0) {
            return 0;
        }
        return getRc(refblock(off), cluster & ((1L << rbBits) - 1));
    }

    /** Sets the refcount of a cluster whose refcount block exists. */
    private void setRefcountRaw(long cluster, long v) throws IOException {
        long idx = cluster >>> rbBits;
        long off = rt[(int) idx] & REFT_OFFSET_MASK;
        byte[] b = refblock(off);
        int at = setRc(b, cluster & ((1L << rbBits) - 1), v);
        writeAt(b, at, rcBytes(), off + at);
        if (v == 0 && cluster < freeHint) {
            freeHint = cluster;
        }
    }

    private void updateRefcount(long cluster, long delta) throws IOException {
        ensureRefblockFor(cluster);
        long old = getRefcount(cluster);
        long nv = old + delta;
        if (nv < 0) {
            throw new ImageException("'" + filename + "': refcount of cluster at 0x"
                    + Long.toHexString(cluster << clusterBits) + " would become negative (image is corrupt)");
        }
        if (nv > refcountMax || (delta > 0 && nv < old)) {
            throw new ImageException("'" + filename + "': refcount overflow for cluster at 0x"
                    + Long.toHexString(cluster << clusterBits) + " (maximum " + refcountMax + ")");
        }
        setRefcountRaw(cluster, nv);
    }

    /** First run of n clusters with refcount 0, starting the search at {@code from}. */
    private long findFree(long from, long n) throws IOException {
        long c = Math.max(from, 1);
        long run = 0;
        long runStart = c;
        long perBlock = 1L << rbBits;
        while (true) {
            long idx = c >>> rbBits;
            if (idx >= rt.length) {
                return run > 0 ? runStart : c;
            }
            if ((rt[(int) idx] & REFT_OFFSET_MASK) == 0) {
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
            if (getRefcount(c) == 0) {
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
    private void ensureRefblockFor(long cluster) throws IOException {
        long idx = cluster >>> rbBits;
        while (true) {
            if (idx >= rt.length) {
                growRefcountTable(idx + 1);
                continue;
            }
            if ((rt[(int) idx] & REFT_OFFSET_MASK) != 0) {
                return;
            }
            long b = findFree(freeHint, 1);
            long bi = b >>> rbBits;
            byte[] blk = new byte[(int) cs];
            if (bi == idx) {
                // the new block describes itself
                setRc(blk, b & ((1L << rbBits) - 1), 1);
            } else if (bi >= rt.length || (rt[(int) bi] & REFT_OFFSET_MASK) == 0) {
                ensureRefblockFor(b);
                continue;
            } else {
                setRefcountRaw(b, 1);
            }
            writeAt(blk, 0, blk.length, b << clusterBits);
            syncMeta();
            rt[(int) idx] = b << clusterBits;
            writeLong(rtOffset + idx * 8, rt[(int) idx]);
            rbCache.put(b << clusterBits, blk);
            hostEnd = Math.max(hostEnd, b + 1);
            syncMeta();
            return;
        }
    }

    private void growRefcountTable(long minEntries) throws IOException {
        long perCluster = cs / 8;
        long newEntries = Math.max(minEntries + 2, rt.length + rt.length / 2 + 1);
        newEntries = (newEntries + perCluster - 1) / perCluster * perCluster;
        long start = Math.max(hostEnd, (ch.size() + cs - 1) >> clusterBits);
        while (true) {
            if (newEntries * 8 > MAX_REFTABLE_BYTES) {
                throw new ImageException("'" + filename + "': Reference count table too large");
            }
            long tClusters = newEntries * 8 / cs;
            TreeSet<Long> needed = new TreeSet<>();
            int k = 0;
            while (true) {
                needed.clear();
                for (long c = start; c < start + tClusters + k; c++) {
                    long bi = c >>> rbBits;
                    if (bi >= rt.length || (rt[(int) bi] & REFT_OFFSET_MASK) == 0) {
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
                busy = getRefcount(c) != 0;
            }
            if (busy) {
                start = areaEnd;
                continue;
            }
            long[] newRt = Arrays.copyOf(rt, (int) newEntries);
            Map<Long, byte[]> blocks = new LinkedHashMap<>();
            long next = start + tClusters;
            for (long bi : needed) {
                newRt[(int) bi] = next << clusterBits;
                blocks.put(bi, new byte[(int) cs]);
                next++;
            }
            for (long c = start; c < areaEnd; c++) {
                long bi = c >>> rbBits;
                byte[] blk = blocks.get(bi);
                if (blk != null) {
                    setRc(blk, c & ((1L << rbBits) - 1), 1);
                } else {
                    setRefcountRaw(c, 1);
                }
            }
            for (Map.Entry<Long, byte[]> e : blocks.entrySet()) {
                writeAt(e.getValue(), 0, (int) cs, newRt[(int) (long) e.getKey()]);
            }
            ByteBuffer tb = ByteBuffer.allocate((int) (tClusters * cs));
            tb.asLongBuffer().put(newRt);
            writeHost(tb, start << clusterBits);
            ch.force(false);
            ByteBuffer hb = ByteBuffer.allocate(12);
            hb.putLong(0, start << clusterBits).putInt(8, (int) tClusters);
            writeHost(hb, 48);
            ch.force(false);
            long oldOff = rtOffset;
            int oldClusters = rtClusters;
            rt = newRt;
            rtOffset = start << clusterBits;
            rtClusters = (int) tClusters;
            for (Map.Entry<Long, byte[]> e : blocks.entrySet()) {
                rbCache.put(newRt[(int) (long) e.getKey()], e.getValue());
            }
            hostEnd = Math.max(hostEnd, areaEnd);
            for (int i = 0; i < oldClusters; i++) {
                updateRefcount((oldOff >> clusterBits) + i, -1);
            }
            LOG.debug("{}: refcount table grown to {} clusters at 0x{}", filename, tClusters,
                    Long.toHexString(rtOffset));
            return;
        }
    }

    /** Allocates one cluster (refcount 1 written) and returns its host offset. */
    private long allocateCluster() throws IOException {
        while (true) {
            long c = findFree(freeHint, 1);
            ensureRefblockFor(c);
            if (getRefcount(c) == 0) {
                setRefcountRaw(c, 1);
                freeHint = c + 1;
                hostEnd = Math.max(hostEnd, c + 1);
                return c << clusterBits;
            }
        }
    }

    private long allocateContiguous(long n) throws IOException {
        while (true) {
            long start = findFree(freeHint, n);
            long savedHint = freeHint;
            freeHint = start + n; // new refcount blocks go after the run, not into it
            for (long c = start; c < start + n; c++) {
                ensureRefblockFor(c);
            }
            freeHint = Math.min(freeHint, savedHint);
            boolean free = true;
            for (long c = start; c < start + n && free; c++) {
                free = getRefcount(c) == 0;
            }
            if (!free) {
                continue;
            }
            setRefcountsToOne(start, n);
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
    private void setRefcountsToOne(long start, long n) throws IOException {
        long c = start;
        long end = start + n;
        while (c < end) {
            long idx = c >>> rbBits;
            long off = rt[(int) idx] & REFT_OFFSET_MASK;
            byte[] b = refblock(off);
            long blockEnd = Math.min(end, (idx + 1) << rbBits);
            int lo = Integer.MAX_VALUE;
            int hi = 0;
            for (; c < blockEnd; c++) {
                int at = setRc(b, c & ((1L << rbBits) - 1), 1);
                lo = Math.min(lo, at);
                hi = Math.max(hi, at + rcBytes());
            }
            writeAt(b, lo, hi - lo, off + lo);
        }
    }

    private void freeClusters(long off, long bytes) throws IOException {
        long first = off >> clusterBits;
        long last = (off + bytes - 1) >> clusterBits;
        for (long c = first; c <= last; c++) {
            updateRefcount(c, -1);
        }
    }

    /** Drops the reference an L2 entry held (after the entry itself has been replaced). */
    private void freeEntry(long e) throws IOException {
        if ((e & OFLAG_COMPRESSED) != 0) {
            long coff = e & coffsetMask;
            long nb = ((e >>> csizeShift) & csizeMask) + 1;
            freeClusters(coff & ~511L, nb * 512);
        } else {
            long off = e & OFFSET_MASK;
            if (off != 0) {
                updateRefcount(off >> clusterBits, -1);
            }
        }
    }

    // ------------------------------------------------------------------ header (meta held)

    private boolean lazy() {
        return (compat & COMPAT_LAZY) != 0;
    }

    private void writeIncompat(long v) throws IOException {
        ch.force(true);
        writeHeaderLong(72, v);
        ch.force(true);
        incompat = v;
    }

    private void markDirty() throws IOException {
        if (version == 3 && lazy() && (incompat & INCOMPAT_DIRTY) == 0) {
            writeIncompat(incompat | INCOMPAT_DIRTY);
            dirtySetByUs = true;
        }
    }

    private void clearDirtyIfSet() throws IOException {
        if (!readOnly && (incompat & INCOMPAT_DIRTY) != 0) {
            writeIncompat(incompat & ~INCOMPAT_DIRTY);
            dirtySetByUs = false;
        }
    }

    private byte[] buildHeader(String bfile, String bfmt) throws ImageException {
        ByteBuffer b = ByteBuffer.allocate((int) cs);
        b.put(rawHeader);
        b.putInt(0, MAGIC).putInt(4, version);
        b.putInt(20, clusterBits).putLong(24, size).putInt(32, 0);
        b.putInt(36, l1.length).putLong(40, l1Offset).putLong(48, rtOffset).putInt(56, rtClusters);
        b.putInt(60, nbSnapshots).putLong(64, snapshotsOffset);
        if (version == 3) {
            b.putLong(72, incompat).putLong(80, compat).putLong(88, autoclear);
            b.putInt(96, refcountOrder).putInt(100, headerLength);
        }
        int pos = headerLength;
        List<Ext> exts = new ArrayList<>();
        if (bfmt != null) {
            exts.add(new Ext(EXT_BACKING_FORMAT, bfmt.getBytes(StandardCharsets.UTF_8)));
        }
        exts.addAll(otherExts);
        for (Ext e : exts) {
            int padded = (e.data.length + 7) & ~7;
            if (pos + 8 + padded + 8 > cs) {
                throw new ImageException("Could not update the header of '" + filename
                        + "': No space left on device (header extensions do not fit in the first cluster)");
            }
            b.putInt(pos, e.type).putInt(pos + 4, e.data.length);
            b.put(pos + 8, e.data);
            pos += 8 + padded;
        }
        pos += 8; // end of extensions
        if (bfile != null) {
            byte[] n = bfile.getBytes(StandardCharsets.UTF_8);
            if (n.length > 1023) {
                throw new ImageException("Backing file name too long");
            }
            if (pos + n.length > cs) {
                throw new ImageException("Could not change the backing file to '" + bfile
                        + "': No space left on device (the header does not fit in the first cluster)");
            }
            b.put(pos, n);
            b.putLong(8, pos).putInt(16, n.length);
            pos += n.length;
        } else {
            b.putLong(8, 0).putInt(16, 0);
        }
        byte[] r = new byte[pos];
        b.get(0, r);
        return r;
    }

    private void writeHeader(byte[] h) throws IOException {
        int len = Math.max(h.length, headerUsed);
        byte[] full = Arrays.copyOf(h, (int) Math.min(cs, len));
        writeAt(full, 0, full.length, 0);
        headerUsed = h.length;
    }

    // ------------------------------------------------------------------ L1/L2 (meta held)

    private long l2Entry(long gc) throws IOException {
        long l1i = gc >>> l2Bits;
        if (l1i >= l1.length) {
            return 0;
        }
        long l2off = l1[(int) l1i] & OFFSET_MASK;
        if (l2off == 0) {
            return 0;
        }
        byte[] t = l2(l2off);
        return ByteBuffer.wrap(t).getLong((int) (gc & ((1L << l2Bits) - 1)) * 8);
    }

    private void setL1(int i, long v) throws IOException {
        l1[i] = v;
        writeLong(l1Offset + (long) i * 8, v);
    }

    private void setL2(long gc, long v) throws IOException {
        long l2off = l1[(int) (gc >>> l2Bits)] & OFFSET_MASK;
        byte[] t = l2(l2off);
        int at = (int) (gc & ((1L << l2Bits) - 1)) * 8;
        ByteBuffer.wrap(t).putLong(at, v);
        writeAt(t, at, 8, l2off + at);
    }

    /** Makes sure the L2 table for guest cluster gc exists and is owned by this image only (refcount 1). */
    private void ensureL2Writable(long gc) throws IOException {
        int l1i = (int) (gc >>> l2Bits);
        long e = l1[l1i];
        long off = e & OFFSET_MASK;
        if (off == 0) {
            long n = allocateCluster();
            byte[] t = new byte[(int) cs];
            writeAt(t, 0, t.length, n);
            syncMeta();
            l2Cache.put(n, t);
            setL1(l1i, n | OFLAG_COPIED);
            return;
        }
        long rc = getRefcount(off >> clusterBits);
        if (rc != 1) {
            byte[] old = l2(off);
            long n = allocateCluster();
            byte[] t = old.clone();
            writeAt(t, 0, t.length, n);
            syncMeta();
            l2Cache.put(n, t);
            setL1(l1i, n | OFLAG_COPIED);
            if (rc > 1) {
                updateRefcount(off >> clusterBits, -1);
            }
            return;
        }
        if ((e & OFLAG_COPIED) == 0) {
            setL1(l1i, off | OFLAG_COPIED);
        }
    }

    private enum Kind { UNALLOC, ZERO, DATA, COMPRESSED }

    private Kind kindOf(long e) {
        if ((e & OFLAG_COMPRESSED) != 0) {
            return Kind.COMPRESSED;
        }
        if (version == 3 && (e & OFLAG_ZERO) != 0) {
            return Kind.ZERO;
        }
        return (e & OFFSET_MASK) != 0 ? Kind.DATA : Kind.UNALLOC;
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
            return backingFile;
        } finally {
            meta.unlock();
        }
    }

    @Override
    public String backingFormatString() {
        meta.lock();
        try {
            return backingFormat;
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
                b.read(pos, slice(buf, off, (int) m));
            }
        }
        if (m < n) {
            zero(buf, off + (int) m, n - (int) m);
        }
    }

    private void checkDataOffset(long host, long guest) throws IOException {
        if ((host & (cs - 1)) != 0) {
            throw new ImageException("'" + filename + "': L2 entry for guest offset 0x" + Long.toHexString(guest)
                    + " points to unaligned host offset 0x" + Long.toHexString(host) + " (image is corrupt)");
        }
        if (host >= ch.size()) {
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
        } else if (host + cs > l1Offset && host < l1Offset + (long) l1.length * 8) {
            what = "the active L1 table";
        } else if (host + cs > rtOffset && host < rtOffset + (long) rtClusters * cs) {
            what = "the refcount table";
        } else if (l2Cache.containsKey(host)) {
            what = "an L2 table";
        } else if (rbCache.containsKey(host)) {
            what = "a refcount block";
        }
        if (what != null) {
            throw new ImageException("'" + filename + "': L2 entry for guest offset 0x" + Long.toHexString(guest)
                    + " points to host offset 0x" + Long.toHexString(host) + ", which holds " + what
                    + "; preventing invalid write on metadata (image is corrupt)");
        }
    }

    private byte[] readCompressed(long e, long guest) throws IOException {
        long coff = e & coffsetMask;
        long nb = ((e >>> csizeShift) & csizeMask) + 1;
        long csize = nb * 512 - (coff & 511);
        long fileSize = ch.size();
        if (coff < cs || coff >= fileSize) {
            throw new ImageException("'" + filename + "': compressed cluster for guest offset 0x"
                    + Long.toHexString(guest) + " at host offset 0x" + Long.toHexString(coff) + " is outside the file");
        }
        int n = (int) Math.min(csize, fileSize - coff);
        byte[] in = new byte[n];
        readAt(ch, in, 0, n, coff);
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
        opLock.readLock().lock();
        try {
            checkOpen();
            checkRange(offset, len);
            if (len == 0) {
                return;
            }
            RangeLock.Range r = rangeLock.lock(alignDown(offset), alignUp(offset + len), false);
            try {
                readLocked(offset, buf, bufOffset, len);
            } finally {
                rangeLock.unlock(r);
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    /** Reads guest bytes into {@code buf}[bufOffset, bufOffset+len) (absolute indexes). */
    private void readLocked(long offset, ByteBuffer buf, int bufOffset, int len) throws IOException {
        long pos = offset;
        long end = offset + len;
        // a run of clusters of one kind (host-contiguous for DATA)
        Kind runKind = null;
        long runStart = 0;
        long runHost = 0;
        while (pos < end) {
            long gc = pos >>> clusterBits;
            long e;
            meta.lock();
            try {
                e = l2Entry(gc);
            } finally {
                meta.unlock();
            }
            Kind k = kindOf(e);
            long inC = pos & (cs - 1);
            int n = (int) Math.min(cs - inC, end - pos);
            long host = 0;
            if (k == Kind.DATA) {
                long h = e & OFFSET_MASK;
                checkDataOffset(h, gc << clusterBits);
                host = h + inC;
            }
            if (runKind != null && (k != runKind || k == Kind.COMPRESSED
                    || (k == Kind.DATA && host != runHost + (pos - runStart)))) {
                readRun(runKind, runStart, runHost, pos - runStart, buf, bufOffset + (int) (runStart - offset));
                runKind = null;
            }
            if (k == Kind.COMPRESSED) {
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

    private void readRun(Kind k, long guest, long host, long len, ByteBuffer buf, int off) throws IOException {
        switch (k) {
            case UNALLOC -> readBacking(guest, buf, off, (int) len);
            case ZERO -> zero(buf, off, (int) len);
            case DATA -> readAt(ch, buf, off, (int) len, host);
            default -> throw new IllegalStateException();
        }
    }

    /** Full guest-visible content of one cluster as this layer currently sees it (for copy-on-write). */
    private byte[] clusterContent(long gc, long e) throws IOException {
        Kind k = kindOf(e);
        long guest = gc << clusterBits;
        byte[] b = new byte[(int) cs];
        switch (k) {
            case COMPRESSED -> b = readCompressed(e, guest);
            case ZERO -> { }
            case DATA -> {
                long h = e & OFFSET_MASK;
                checkDataOffset(h, guest);
                readAt(ch, b, 0, b.length, h);
            }
            case UNALLOC -> {
                int n = (int) Math.max(0, Math.min(cs, size - guest));
                readBacking(guest, b, 0, n);
            }
        }
        return b;
    }

    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            checkWritable();
            checkRange(offset, len);
            if (len == 0) {
                return;
            }
            recordInBitmaps(offset, len);
            guestWriteEnd.accumulateAndGet(offset + len, Math::max);
            RangeLock.Range r = rangeLock.lock(alignDown(offset), alignUp(offset + len), true);
            try {
                writeLocked(offset, buf, bufOffset, len);
            } finally {
                rangeLock.unlock(r);
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    /** A planned write into one cluster. */
    private record Plan(long gc, long host, long oldEntry, boolean fresh) {
    }

    /** Writes guest data; the caller holds the range lock (or the op write lock). */
    private void writeLocked(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        long first = offset >>> clusterBits;
        long last = (offset + len - 1) >>> clusterBits;
        List<Plan> plans = new ArrayList<>();
        meta.lock();
        try {
            markDirty();
            for (long gc = first; gc <= last; gc++) {
                ensureL2Writable(gc);
                long e = l2Entry(gc);
                long h = e & OFFSET_MASK;
                if (kindOf(e) == Kind.DATA && getRefcount(h >> clusterBits) == 1) {
                    checkDataOffset(h, gc << clusterBits);
                    checkNotMetadata(h, gc << clusterBits);
                    plans.add(new Plan(gc, h, e, false));
                } else {
                    plans.add(new Plan(gc, allocateCluster(), e, true));
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
                    writeAt(buf, srcOff, (int) (e - s), p.host + (s - cStart));
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
                writeAt(cbuf, 0, cbuf.length, p.host);
            }
        } catch (IOException | RuntimeException ex) {
            meta.lock();
            try {
                for (Plan p : plans) {
                    if (p.fresh) {
                        try {
                            updateRefcount(p.host >> clusterBits, -1);
                        } catch (IOException ignored) {
                            // the cluster leaks
                        }
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
            syncMeta();
            for (Plan p : plans) {
                if (p.fresh) {
                    setL2(p.gc, p.host | OFLAG_COPIED);
                }
            }
            for (Plan p : plans) {
                if (p.fresh) {
                    freeEntry(p.oldEntry);
                }
            }
        } finally {
            meta.unlock();
        }
    }

    /** Whether [cStart, cStart+cs) is entirely inside [s, e), treating the image end as the cluster end. */
    private boolean coversCluster(long s, long e, long cStart) {
        return s <= cStart && e >= Math.min(cStart + cs, size);
    }

    @Override
    public void writeZeroes(long offset, long len) throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            checkWritable();
            checkRange(offset, len);
            if (len == 0) {
                return;
            }
            recordInBitmaps(offset, len);
            guestWriteEnd.accumulateAndGet(offset + len, Math::max);
            RangeLock.Range r = rangeLock.lock(alignDown(offset), alignUp(offset + len), true);
            try {
                zeroLocked(offset, len);
            } finally {
                rangeLock.unlock(r);
            }
        } finally {
            opLock.readLock().unlock();
        }
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

    private void zeroClusters(long gc0, long n) throws IOException {
        if (version == 3) {
            zeroClustersV3(gc0, n);
            return;
        }
        byte[] zeros = null;
        for (long gc = gc0; gc < gc0 + n; gc++) {
            long guest = gc << clusterBits;
            if (version == 3) {
                meta.lock();
                try {
                    markDirty();
                    ensureL2Writable(gc);
                    long e = l2Entry(gc);
                    if (e != OFLAG_ZERO) {
                        setL2(gc, OFLAG_ZERO);
                        freeEntry(e);
                    }
                } finally {
                    meta.unlock();
                }
                continue;
            }
            Image b = backing;
            if (b == null || guest >= b.size()) {
                meta.lock();
                try {
                    long e = l2Entry(gc);
                    if (kindOf(e) != Kind.UNALLOC) {
                        ensureL2Writable(gc);
                        e = l2Entry(gc);
                        setL2(gc, 0);
                        freeEntry(e);
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
     * Makes guest clusters [gc0, gc0+n) zero clusters (version 3), one L2 table at a time: the changed entries of a
     * table go to the file in one write, then the clusters they pointed to are freed. A backup of a large empty disk
     * writes a zero entry for every cluster, as QEMU does; entry by entry that took one system call per cluster.
     */
    private void zeroClustersV3(long gc0, long n) throws IOException {
        long perTable = 1L << l2Bits;
        long gc = gc0;
        long end = gc0 + n;
        while (gc < end) {
            long tableEnd = Math.min(end, (gc / perTable + 1) * perTable);
            meta.lock();
            try {
                markDirty();
                ensureL2Writable(gc);
                long l2off = l1[(int) (gc >>> l2Bits)] & OFFSET_MASK;
                byte[] t = l2(l2off);
                ByteBuffer tb = ByteBuffer.wrap(t);
                List<Long> old = new ArrayList<>();
                int lo = Integer.MAX_VALUE;
                int hi = 0;
                for (long g = gc; g < tableEnd; g++) {
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
                    writeAt(t, lo, hi - lo, l2off + lo);
                    for (long e : old) {
                        freeEntry(e);
                    }
                }
            } finally {
                meta.unlock();
            }
            gc = tableEnd;
        }
    }

    // ------------------------------------------------------------------ compressed writes

    /**
     * Where the next compressed cluster's bytes go (QEMU's s->free_byte_offset): inside a host cluster that earlier
     * compressed clusters filled partly, or 0 when there is none. Not stored in the file: after a reopen, compressed
     * data start in a fresh cluster, as in QEMU. Guarded by meta.
     */
    private long freeByteOffset;
    /**
     * The refcount the cluster holding {@link #freeByteOffset} had right after our last allocation in it. Any other
     * value means something else changed that cluster since (a compressed cluster in it was freed, it was freed and
     * reused), so new bytes must not go there. Guarded by meta.
     */
    private long freeByteRefs;

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
        opLock.readLock().lock();
        try {
            checkOpen();
            checkWritable();
            checkRange(offset, len);
            if ((offset & (cs - 1)) != 0 || ((len & (cs - 1)) != 0 && offset + len != size)) {
                throw new ImageException("Invalid argument");
            }
            if (len == 0) {
                return;
            }
            recordInBitmaps(offset, len); // a compressed write changes guest data like any other
            guestWriteEnd.accumulateAndGet(offset + len, Math::max);
            RangeLock.Range r = rangeLock.lock(offset, alignUp(offset + len), true);
            try {
                writeCompressedLocked(offset, buf, bufOffset, len);
            } finally {
                rangeLock.unlock(r);
            }
        } finally {
            opLock.readLock().unlock();
        }
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
                    if ((l2Entry(gc) & OFFSET_MASK) != 0) {
                        throw new ImageException("Input/output error");
                    }
                    if (packed != null) {
                        markDirty();
                        ensureL2Writable(gc);
                        host = allocateBytes(packed.length);
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
                    writeAt(packed, 0, packed.length, host);
                } catch (IOException | RuntimeException ex) {
                    meta.lock();
                    try {
                        freeClusters(host, packed.length);
                    } catch (IOException ignored) {
                        // the bytes leak
                    } finally {
                        meta.unlock();
                    }
                    throw ex;
                }
                long sectors = ((host + packed.length - 1) >> 9) - (host >> 9);
                pending.add(new Packed(gc, OFLAG_COMPRESSED | (sectors << csizeShift) | host));
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
            syncMeta();
            for (Packed p : pending) {
                setL2(p.gc(), p.entry());
            }
            pending.clear();
        } finally {
            meta.unlock();
        }
    }

    /**
     * Allocates {@code n} bytes (1..cluster size) for compressed data, as QEMU's qcow2_alloc_bytes: right after the
     * previous compressed data when they fit in its host cluster (or run on into the next cluster when that one is
     * the next free cluster), else at the start of a new cluster. Increments the refcount of every cluster the bytes
     * touch. Caller holds meta.
     */
    private long allocateBytes(int n) throws IOException {
        long off = freeByteOffset;
        if (off != 0) {
            long rc = getRefcount(off >> clusterBits);
            if (rc != freeByteRefs || rc >= refcountMax) {
                off = 0;
            }
        }
        long room = off == 0 ? 0 : cs - (off & (cs - 1));
        if (off == 0 || room < n) {
            long c;
            while (true) {
                c = findFree(freeHint, 1);
                ensureRefblockFor(c);
                if (getRefcount(c) == 0) {
                    break;
                }
            }
            freeHint = c + 1;
            hostEnd = Math.max(hostEnd, c + 1);
            if (off == 0 || alignUp(off) != c << clusterBits) {
                off = c << clusterBits;
            }
        }
        long first = off >> clusterBits;
        long last = (off + n - 1) >> clusterBits;
        for (long c = first; c <= last; c++) {
            updateRefcount(c, 1);
        }
        freeByteOffset = off + n;
        if ((freeByteOffset & (cs - 1)) == 0) {
            freeByteOffset = 0;
        } else {
            freeByteRefs = getRefcount(freeByteOffset >> clusterBits);
        }
        return off;
    }

    @Override
    public void discard(long offset, long len) throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            checkWritable();
            checkRange(offset, len);
            if (len == 0) {
                return;
            }
            recordInBitmaps(offset, len);
            guestWriteEnd.accumulateAndGet(offset + len, Math::max);
            long end = offset + len;
            RangeLock.Range r = rangeLock.lock(alignDown(offset), alignUp(end), true);
            try {
                for (long cStart = alignUp(offset); cStart < end; cStart += cs) {
                    if (!coversCluster(offset, end, cStart)) {
                        continue;
                    }
                    long gc = cStart >>> clusterBits;
                    meta.lock();
                    try {
                        long e = l2Entry(gc);
                        Kind k = kindOf(e);
                        boolean hasData = k == Kind.DATA || k == Kind.COMPRESSED;
                        if (version == 3) {
                            if (e == OFLAG_ZERO || (!hasData && backing == null)) {
                                continue;
                            }
                            markDirty();
                            ensureL2Writable(gc);
                            e = l2Entry(gc);
                            setL2(gc, OFLAG_ZERO);
                            freeEntry(e);
                        } else if (backing == null && hasData) {
                            ensureL2Writable(gc);
                            e = l2Entry(gc);
                            setL2(gc, 0);
                            freeEntry(e);
                        }
                    } finally {
                        meta.unlock();
                    }
                }
            } finally {
                rangeLock.unlock(r);
            }
        } finally {
            opLock.readLock().unlock();
        }
    }

    @Override
    public void flush() throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            if (!readOnly) {
                ch.force(true);
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
            BlockStatus.Kind kind = null;
            long pos = offset;
            meta.lock();
            try {
                while (pos < end) {
                    long gc = pos >>> clusterBits;
                    long l1i = gc >>> l2Bits;
                    BlockStatus.Kind k;
                    long runEnd;
                    if (l1i >= l1.length || (l1[(int) l1i] & OFFSET_MASK) == 0) {
                        k = BlockStatus.Kind.UNALLOCATED;
                        runEnd = (l1i + 1) << (l2Bits + clusterBits);
                    } else {
                        long e = l2Entry(gc);
                        Kind kk = kindOf(e);
                        k = kk == Kind.UNALLOC ? BlockStatus.Kind.UNALLOCATED
                                : kk == Kind.ZERO ? BlockStatus.Kind.ZERO : BlockStatus.Kind.DATA;
                        runEnd = (gc + 1) << clusterBits;
                    }
                    if (kind == null) {
                        kind = k;
                    } else if (k != kind) {
                        break;
                    }
                    pos = Math.min(runEnd, end);
                }
            } finally {
                meta.unlock();
            }
            return new BlockStatus(kind, pos - offset);
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
                    ((offset >>> (l2Bits + clusterBits)) + 1) << (l2Bits + clusterBits));
            if (offset < 0 || offset >= end) {
                return new BlockStatus(BlockStatus.Kind.UNALLOCATED, 0);
            }
            meta.lock();
            try {
                long gc = offset >>> clusterBits;
                long l1i = gc >>> l2Bits;
                if (l1i >= l1.length || (l1[(int) l1i] & OFFSET_MASK) == 0) {
                    return new BlockStatus(BlockStatus.Kind.UNALLOCATED, end - offset);
                }
                long first = l2Entry(gc);
                Kind kind = kindOf(first);
                boolean checkOffset = kind == Kind.DATA || (kind == Kind.ZERO && (first & OFFSET_MASK) != 0);
                long expected = (first & OFFSET_MASK) + cs;
                long pos = (gc + 1) << clusterBits;
                if (kind != Kind.COMPRESSED) {
                    for (long c = gc + 1; pos < end; c++, pos += cs) {
                        long e = l2Entry(c);
                        if (kindOf(e) != kind || (checkOffset && (e & OFFSET_MASK) != expected)) {
                            break;
                        }
                        expected += cs;
                    }
                }
                BlockStatus.Kind k = kind == Kind.UNALLOC ? BlockStatus.Kind.UNALLOCATED
                        : kind == Kind.ZERO ? BlockStatus.Kind.ZERO : BlockStatus.Kind.DATA;
                return new BlockStatus(k, Math.min(pos, end) - offset);
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
        opLock.readLock().lock();
        try {
            checkOpen();
            checkWritable();
            checkRange(offset, len);
            if (len == 0 || backing == null) {
                return 0;
            }
            long end = offset + len;
            long written = 0;
            RangeLock.Range r = rangeLock.lock(alignDown(offset), alignUp(end), true);
            try {
                for (long cStart = alignDown(offset); cStart < end; cStart += cs) {
                    long gc = cStart >>> clusterBits;
                    long e;
                    meta.lock();
                    try {
                        e = l2Entry(gc);
                    } finally {
                        meta.unlock();
                    }
                    if (kindOf(e) != Kind.UNALLOC) {
                        continue;
                    }
                    int n = (int) Math.min(cs, size - cStart);
                    byte[] data = new byte[n];
                    readBacking(cStart, data, 0, n);
                    writeLocked(cStart, data, 0, n);
                    written += Math.min(end, cStart + n) - Math.max(offset, cStart);
                }
            } finally {
                rangeLock.unlock(r);
            }
            return written;
        } finally {
            opLock.readLock().unlock();
        }
    }

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
     */
    @Override
    public long copyUpFromBacking(long offset, long len, Image base, ByteBuffer buffer) throws IOException {
        opLock.readLock().lock();
        try {
            checkOpen();
            checkWritable();
            checkRange(offset, len);
            Image b = backing;
            if (len == 0 || b == null) {
                return 0;
            }
            long end = offset + len;
            RangeLock.Range r = rangeLock.lock(alignDown(offset), alignUp(end), true);
            try {
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
                    for (long[] run : runs) {
                        copied += Math.min(end, Math.min(run[1], size)) - Math.max(offset, run[0]);
                        for (long s = run[0]; s < run[1]; s += step) {
                            long e = Math.min(run[1], s + step);
                            int n = (int) (e - s);
                            int data = (int) (Math.min(e, size) - s);
                            readBacking(s, buf, 0, data);
                            if (data < n) {
                                zero(buf, data, n - data);
                            }
                            long host;
                            meta.lock();
                            try {
                                markDirty();
                                for (long c = s; c < e; c += cs) {
                                    ensureL2Writable(c >>> clusterBits);
                                }
                                host = allocateContiguous((e - s) >>> clusterBits);
                            } finally {
                                meta.unlock();
                            }
                            done.add(new long[] {s, (e - s) >>> clusterBits, host});
                            writeHostInPieces(slice(buf, 0, n), host);
                        }
                    }
                } catch (IOException | RuntimeException ex) {
                    meta.lock();
                    try {
                        for (long[] d : done) {
                            for (long i = 0; i < d[1]; i++) {
                                try {
                                    updateRefcount((d[2] >> clusterBits) + i, -1);
                                } catch (IOException ignored) {
                                    // the cluster leaks
                                }
                            }
                        }
                    } finally {
                        meta.unlock();
                    }
                    throw ex;
                }
                // 3. metadata: data first, then the L2 entries, table by table
                meta.lock();
                try {
                    syncMeta();
                    for (long[] d : done) {
                        long gc0 = d[0] >>> clusterBits;
                        for (long i = 0; i < d[1]; ) {
                            long gc = gc0 + i;
                            ensureL2Writable(gc);
                            long l1i = gc >>> l2Bits;
                            long l2off = l1[(int) l1i] & OFFSET_MASK;
                            byte[] t = l2(l2off);
                            int first = (int) (gc & ((1L << l2Bits) - 1));
                            int k = 0;
                            ByteBuffer tb = ByteBuffer.wrap(t);
                            while (i + k < d[1] && ((gc + k) >>> l2Bits) == l1i) {
                                tb.putLong((first + k) * 8, (d[2] + ((i + k) << clusterBits)) | OFLAG_COPIED);
                                k++;
                            }
                            writeAt(t, first * 8, k * 8, l2off + first * 8L);
                            i += k;
                        }
                    }
                } finally {
                    meta.unlock();
                }
                return copied;
            } finally {
                rangeLock.unlock(r);
            }
        } finally {
            opLock.readLock().unlock();
        }
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
                byte[] h = buildHeader(f, f == null ? null : fmt);
                // Written after every data and metadata write that came before it (a killed process finds a
                // consistent image); durable at the next flush, as QEMU's header update with cache=writeback.
                writeHeader(h);
                backingFile = f;
                backingFormat = f == null ? null : fmt;
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
                markDirty();
                if (newSize > old) {
                    if (neededL1 > l1.length) {
                        growL1((int) neededL1);
                    }
                } else {
                    shrinkClusters(newSize);
                }
                ch.force(false);
                writeHeaderLong(24, newSize);
                ch.force(false);
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
                markDirty();
                shrinkClusters(0);
                ch.force(false);
            } finally {
                meta.unlock();
            }
        } finally {
            opLock.writeLock().unlock();
        }
    }

    private void shrinkClusters(long newSize) throws IOException {
        long firstGone = alignUp(newSize) >>> clusterBits;
        long perL2 = 1L << l2Bits;
        for (int l1i = 0; l1i < l1.length; l1i++) {
            long l2off = l1[l1i] & OFFSET_MASK;
            long tStart = (long) l1i << l2Bits;
            if (l2off == 0 || tStart + perL2 <= firstGone) {
                continue;
            }
            if (tStart >= firstGone) {
                // the whole table goes: drop the pointer, then the references
                byte[] t = l2(l2off).clone();
                setL1(l1i, 0);
                long rc = getRefcount(l2off >> clusterBits);
                if (rc == 1) {
                    ByteBuffer tb = ByteBuffer.wrap(t);
                    for (int i = 0; i < perL2; i++) {
                        freeEntry(tb.getLong(i * 8));
                    }
                }
                updateRefcount(l2off >> clusterBits, -1);
                l2Cache.remove(l2off);
                continue;
            }
            ensureL2Writable(tStart);
            for (long gc = firstGone; gc < tStart + perL2; gc++) {
                long e = l2Entry(gc);
                if (e != 0) {
                    setL2(gc, 0);
                    freeEntry(e);
                }
            }
        }
    }

    private void growL1(int newEntries) throws IOException {
        long bytes = (long) newEntries * 8;
        long clusters = (bytes + cs - 1) >> clusterBits;
        long off = allocateContiguous(clusters);
        long[] n = Arrays.copyOf(l1, newEntries);
        ByteBuffer b = ByteBuffer.allocate((int) bytes);
        b.asLongBuffer().put(n);
        writeHost(b, off);
        ch.force(false);
        ByteBuffer hb = ByteBuffer.allocate(12);
        hb.putInt(0, newEntries).putLong(4, off);
        writeHost(hb, 36);
        ch.force(false);
        long oldOff = l1Offset;
        long oldBytes = (long) l1.length * 8;
        l1 = n;
        l1Offset = off;
        if (oldBytes > 0) {
            freeClusters(oldOff, oldBytes);
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
            if (neededL1 > l1.length) {
                growL1((int) neededL1);
            }
            writeHeaderLong(24, newSize);
            ch.force(true);
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
                    ch.force(true);
                    storeBitmaps(); // as QEMU's qcow2_reopen_bitmaps_ro: written back, in_use cleared
                    clearDirtyIfSet();
                } finally {
                    meta.unlock();
                }
                FileChannel n = openChannel(path, filename, true);
                ch.close();
                ch = n;
                rawCh = n;
                readOnly = true;
                lease.change(false);
            } else {
                if ((incompat & INCOMPAT_CORRUPT) != 0) {
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
                FileChannel n = openChannel(path, filename, false);
                ch.close();
                ch = n;
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
            return new ImageInfo("qcow2", size, cs, version == 2 ? "0.10" : "1.1", refcountBits, lazy(),
                    (incompat & INCOMPAT_CORRUPT) != 0, (incompat & INCOMPAT_DIRTY) != 0, disk);
        } finally {
            meta.unlock();
        }
    }

    @Override
    public void close() throws IOException {
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
                    ch.force(true);
                    try {
                        storeBitmaps();
                    } catch (IOException e) {
                        // the bitmaps stay in_use on disk (inconsistent, as after a crash); the image itself is fine
                        bitmapError = e;
                    }
                    if (dirtySetByUs) {
                        clearDirtyIfSet();
                    }
                } finally {
                    meta.unlock();
                }
            }
            ch.close();
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

    // ------------------------------------------------------------------ persistent dirty bitmaps (Qcow2Bitmaps)

    /**
     * The bitmaps a read-write open must keep, read and checked without writing anything (null: none). Meta held.
     *
     * @throws ImageException when the image holds bitmaps livemon cannot keep (QEMU's texts, see
     *     {@link Qcow2Bitmaps#load}), or a version 2 image holds a bitmaps extension
     */
    private Qcow2Bitmaps loadBitmaps() throws IOException {
        byte[] ext = null;
        for (Ext e : otherExts) {
            if (e.type == Qcow2Bitmaps.EXT_MAGIC) {
                ext = e.data;
            }
        }
        if (ext == null) {
            return null;
        }
        if (version < 3) {
            throw new ImageException("Cannot open '" + filename + "' read-write: it holds persistent dirty bitmaps "
                    + "(qcow2 bitmaps extension), which a version 2 image cannot keep valid; upgrade it with "
                    + "'qemu-img amend -o compat=1.1'");
        }
        if ((autoclear & Qcow2Bitmaps.AUTOCLEAR_BITMAPS) == 0) {
            return null; // a program without bitmap support wrote the image: already invalid, kept as it is
        }
        Qcow2Bitmaps r = Qcow2Bitmaps.load(bitmapHost, filename, cs, size, Qcow2Bitmaps.Ext.parse(ext, cs));
        if ((incompat & INCOMPAT_DIRTY) == 0) {
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
                byte[] ext = null;
                for (Ext e : otherExts) {
                    if (e.type == Qcow2Bitmaps.EXT_MAGIC) {
                        ext = e.data;
                    }
                }
                if (ext == null || version < 3 || (autoclear & Qcow2Bitmaps.AUTOCLEAR_BITMAPS) == 0) {
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

    /** Clears the autoclear bits livemon does not know (the spec's rule for writers), keeps bit 0, bitmaps. */
    private void clearUnknownAutoclear() throws IOException {
        long keep = autoclear & Qcow2Bitmaps.AUTOCLEAR_BITMAPS;
        if (version == 3 && autoclear != keep) {
            autoclear = keep;
            writeHeaderLong(88, keep);
            ch.force(true);
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
            readAt(ch, b, 0, len, pos);
            return b;
        }

        @Override
        public void write(long pos, byte[] b) throws IOException {
            writeAt(b, 0, b.length, pos);
        }

        @Override
        public void sync() throws IOException {
            ch.force(true);
        }

        @Override
        public long allocate(long bytes) throws IOException {
            return allocateContiguous((bytes + cs - 1) >> clusterBits);
        }

        @Override
        public void free(long offset, long bytes) throws IOException {
            freeClusters(offset, bytes);
        }

        @Override
        public long refcount(long offset) throws IOException {
            return getRefcount(offset >> clusterBits);
        }

        @Override
        public int[] otherReferences() throws IOException {
            // the same counting as rebuildRefcounts' step 3, without the bitmaps
            long n = Math.max((ch.size() + cs - 1) >> clusterBits, hostEnd);
            if (n > Integer.MAX_VALUE - 8) {
                throw new ImageException("'" + filename + "': image too large to check its bitmaps");
            }
            int[] counts = new int[(int) n];
            ref(counts, 0, cs);
            ref(counts, l1Offset, (long) l1.length * 8);
            ref(counts, rtOffset, (long) rtClusters * cs);
            for (long r : rt) {
                if ((r & REFT_OFFSET_MASK) != 0) {
                    ref(counts, r & REFT_OFFSET_MASK, cs);
                }
            }
            countL1(counts, l1);
            if (nbSnapshots > 0) {
                countSnapshots(counts);
            }
            return counts;
        }

        @Override
        public void setAutoclearBit(boolean on) throws IOException {
            autoclear = on ? autoclear | Qcow2Bitmaps.AUTOCLEAR_BITMAPS : autoclear & ~Qcow2Bitmaps.AUTOCLEAR_BITMAPS;
            writeHeaderLong(88, autoclear);
            ch.force(true);
        }

        @Override
        public void writeExtension(byte[] data) throws IOException {
            Ext ext = new Ext(Qcow2Bitmaps.EXT_MAGIC, data);
            int at = -1;
            for (int i = 0; i < otherExts.size(); i++) {
                at = otherExts.get(i).type == Qcow2Bitmaps.EXT_MAGIC ? i : at;
            }
            if (at >= 0) {
                otherExts.set(at, ext); // same place in the header as before
            } else {
                otherExts.add(ext);
            }
            autoclear |= Qcow2Bitmaps.AUTOCLEAR_BITMAPS;
            writeHeader(buildHeader(backingFile, backingFormat));
            ch.force(true);
        }
    }

    // ------------------------------------------------------------------ refcount rebuild (meta held)

    /** Counts references from every structure, like qemu-img check -r all, and writes the result. */
    private void rebuildRefcounts() throws IOException {
        long fileClusters = (ch.size() + cs - 1) >> clusterBits;
        // 1. drop stale refcounts past the end of the file (clusters allocated but never written)
        long perBlock = 1L << rbBits;
        for (int idx = 0; idx < rt.length; idx++) {
            if ((rt[idx] & REFT_OFFSET_MASK) == 0) {
                continue;
            }
            long cFirst = Math.max(fileClusters, (long) idx * perBlock);
            for (long c = cFirst; c < (long) (idx + 1) * perBlock; c++) {
                if (getRefcount(c) != 0) {
                    setRefcountRaw(c, 0);
                }
            }
        }
        // 2. make the refcount table big enough for the whole file (plus a few new blocks)
        long neededEntries = (fileClusters + 4 * perBlock) / perBlock + 1;
        if (neededEntries > rt.length) {
            freeHint = fileClusters;
            growRefcountTable(neededEntries);
        }
        long n = (ch.size() + cs - 1) >> clusterBits;
        n = Math.max(n, hostEnd);
        if (n > Integer.MAX_VALUE - 8) {
            throw new ImageException("'" + filename + "': image too large to repair");
        }
        int[] counts = new int[(int) n];
        // 3. count
        ref(counts, 0, cs);
        ref(counts, l1Offset, (long) l1.length * 8);
        ref(counts, rtOffset, (long) rtClusters * cs);
        for (long r : rt) {
            if ((r & REFT_OFFSET_MASK) != 0) {
                ref(counts, r & REFT_OFFSET_MASK, cs);
            }
        }
        countL1(counts, l1);
        if (nbSnapshots > 0) {
            countSnapshots(counts);
        }
        if (bitmaps != null) {
            bitmaps.forEachReference((o, l) -> ref(counts, o, l));
        }
        // 4. write the counts
        freeHint = n;
        for (long c = 0; c < n; c++) {
            long want = counts[(int) c];
            if (want > refcountMax) {
                throw new ImageException("'" + filename + "': refcount overflow while repairing cluster 0x"
                        + Long.toHexString(c << clusterBits));
            }
            if (getRefcount(c) != want) {
                ensureRefblockFor(c);
                setRefcountRaw(c, want);
            }
        }
        freeHint = 0;
        // 5. fix the COPIED flags of the active tables
        for (int i = 0; i < l1.length; i++) {
            long l2off = l1[i] & OFFSET_MASK;
            if (l2off == 0) {
                continue;
            }
            boolean owned = getRefcount(l2off >> clusterBits) == 1;
            long want = l2off | (owned ? OFLAG_COPIED : 0);
            if (l1[i] != want) {
                setL1(i, want);
            }
            if (!owned) {
                continue;
            }
            byte[] t = l2(l2off);
            ByteBuffer tb = ByteBuffer.wrap(t);
            for (int j = 0; j < (1 << l2Bits); j++) {
                long e = tb.getLong(j * 8);
                if ((e & OFLAG_COMPRESSED) != 0 || (e & OFFSET_MASK) == 0) {
                    continue;
                }
                boolean one = getRefcount((e & OFFSET_MASK) >> clusterBits) == 1;
                long we = one ? e | OFLAG_COPIED : e & ~OFLAG_COPIED;
                if (we != e) {
                    tb.putLong(j * 8, we);
                    writeAt(t, j * 8, 8, l2off + j * 8L);
                }
            }
        }
        ch.force(true);
    }

    private int[] ref(int[] counts, long off, long len) throws ImageException {
        if (len <= 0) {
            return counts;
        }
        long first = off >> clusterBits;
        long last = (off + len - 1) >> clusterBits;
        for (long c = first; c <= last; c++) {
            if (c < 0 || c >= counts.length) {
                throw new ImageException("'" + filename + "': reference to host offset 0x"
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
            byte[] t = l2(l2off);
            ByteBuffer tb = ByteBuffer.wrap(t);
            for (int j = 0; j < (1 << l2Bits); j++) {
                long e = tb.getLong(j * 8);
                if ((e & OFLAG_COMPRESSED) != 0) {
                    long coff = e & coffsetMask;
                    long nb = ((e >>> csizeShift) & csizeMask) + 1;
                    ref(counts, coff & ~511L, nb * 512);
                } else if ((e & OFFSET_MASK) != 0) {
                    ref(counts, e & OFFSET_MASK, cs);
                }
            }
        }
    }

    private void countSnapshots(int[] counts) throws IOException {
        long pos = snapshotsOffset;
        for (int i = 0; i < nbSnapshots; i++) {
            byte[] h = new byte[40];
            readAt(ch, h, 0, 40, pos);
            ByteBuffer b = ByteBuffer.wrap(h);
            long sl1Off = b.getLong(0);
            int sl1Size = b.getInt(8);
            int idLen = b.getShort(12) & 0xffff;
            int nameLen = b.getShort(14) & 0xffff;
            int extra = b.getInt(36);
            if (sl1Size < 0 || sl1Size > MAX_L1_BYTES / 8 || extra < 0 || extra > 1024) {
                throw new ImageException("'" + filename + "': invalid snapshot table");
            }
            ref(counts, sl1Off, (long) sl1Size * 8);
            countL1(counts, readLongs(ch, sl1Off, sl1Size));
            pos += 40 + extra + idLen + nameLen;
            pos = (pos + 7) & ~7L;
        }
        ref(counts, snapshotsOffset, pos - snapshotsOffset);
    }
}
