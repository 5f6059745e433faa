package io.livemon.image;

import static io.livemon.image.Qcow2Format.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A qcow2 layer's header (QEMU's block/qcow2.c {@code qcow2_do_open} and {@code qcow2_update_header}): the geometry
 * fixed at open, the feature bits, the backing file name and format, and the header extensions livemon keeps as they
 * are. {@link #read} refuses what QEMU 7.2 refuses, with its texts, before anything is written.
 *
 * <p>Concurrency: the geometry is immutable; every other field is guarded by the owning layer's {@code meta} lock.
 */
final class Qcow2Header {
    /** A header extension kept as is. */
    record Ext(int type, byte[] data) {
    }

    private final Qcow2File file;

    // geometry, immutable after open
    final int version;
    final int clusterBits;
    /** Cluster size in bytes (2^clusterBits, 512 B to 2 MiB). */
    final long clusterSize;
    /** log2 of the entries in one L2 table. */
    final int l2Bits;
    final int refcountOrder;
    final int refcountBits;
    final long refcountMax;
    /** log2 of the entries in one refcount block. */
    final int refcountBlockBits;
    /** Compressed cluster descriptor: where the sector count starts, its mask and the host offset mask. */
    final int csizeShift;
    final long csizeMask;
    final long coffsetMask;
    final int headerLength;
    /** The header's first {@link #headerLength} bytes as read, for fields livemon does not interpret. */
    private final byte[] rawHeader;
    final int nbSnapshots;
    final long snapshotsOffset;

    // where the tables were at open (the cluster map and refcounts own them afterwards)
    final long virtualSize;
    final long l1Entries;
    final long l1Offset;
    final long refcountTableOffset;
    final long refcountTableClusters;

    // guarded by the layer's meta lock
    long incompat;
    long compat;
    long autoclear;
    String backingFile;
    String backingFormat;
    final List<Ext> otherExts = new ArrayList<>();
    /** Bytes of the first cluster the header, its extensions and the backing name take on disk. */
    private int headerUsed;
    /** Whether this process set the dirty bit (lazy refcounts) and so must clear it on a clean close. */
    private boolean dirtySetByUs;

    private Qcow2Header(Qcow2File file, boolean readOnly) throws IOException {
        this.file = file;
        String filename = file.filename;
        long fileSize = file.size();
        byte[] h = new byte[(int) Math.min(fileSize, 4096)];
        file.read(h, 0, h.length, 0);
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
        long cs = 1L << clusterBits;
        clusterSize = cs;
        l2Bits = clusterBits - 3;
        long vsize = hb.getLong(24);
        int crypt = hb.getInt(32);
        long l1Size = hb.getInt(36) & 0xffffffffL;
        l1Offset = hb.getLong(40);
        refcountTableOffset = hb.getLong(48);
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
        file.read(header, 0, header.length, 0);
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
        refcountBlockBits = clusterBits + 3 - refcountOrder;
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
        checkTable("reference count table", refcountTableOffset, rtc * cs, fileSize,
                "Invalid reference count table offset");
        if (nbSnapshots < 0 || nbSnapshots > 65536) {
            throw new ImageException("Too many snapshots");
        }
        if (nbSnapshots > 0 && ((snapshotsOffset & (cs - 1)) != 0 || snapshotsOffset <= 0
                || snapshotsOffset >= fileSize)) {
            throw new ImageException("Invalid snapshot table offset");
        }
        refcountTableClusters = rtc;
        l1Entries = l1Size;
        virtualSize = vsize & ~511L; // QEMU counts whole 512-byte sectors (total_sectors = size / 512)
    }

    /**
     * Reads and checks the header of {@code file}. Writes nothing.
     *
     * @throws ImageException QEMU 7.2's refusal (e.g. {@code Image is not in qcow2 format}, {@code Unsupported qcow2
     *     version 4}, {@code Image is too big}, {@code qcow2: Image is corrupt; cannot be opened read/write})
     */
    static Qcow2Header read(Qcow2File file, boolean readOnly) throws IOException {
        return new Qcow2Header(file, readOnly);
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
        if ((off & (clusterSize - 1)) != 0 || off <= 0 || len < 0) {
            throw new ImageException(msg);
        }
        if (off + len > fileSize || off + len < 0) {
            throw new ImageException(msg + ": " + what + " at 0x" + Long.toHexString(off)
                    + " extends past the end of '" + file.filename + "'");
        }
    }

    boolean lazyRefcounts() {
        return (compat & COMPAT_LAZY) != 0;
    }

    /** The data of the header extension of {@code type} livemon keeps as is (null: none). */
    byte[] extension(int type) {
        byte[] r = null;
        for (Ext e : otherExts) {
            if (e.type() == type) {
                r = e.data();
            }
        }
        return r;
    }

    /** Replaces the extension of {@code type} in its place, or adds it last. Written by the next {@link #rewrite}. */
    void putExtension(int type, byte[] data) {
        Ext ext = new Ext(type, data);
        int at = -1;
        for (int i = 0; i < otherExts.size(); i++) {
            at = otherExts.get(i).type() == type ? i : at;
        }
        if (at >= 0) {
            otherExts.set(at, ext); // same place in the header as before
        } else {
            otherExts.add(ext);
        }
    }

    /** Writes one 64-bit header field at {@code fieldOffset} (see {@link Qcow2Format}'s {@code HDR_} offsets). */
    void writeField(int fieldOffset, long v) throws IOException {
        file.writeLong(fieldOffset, v);
    }

    /** Writes the incompatible feature bits between two full syncs, as QEMU's qcow2_mark_dirty/_clean do. */
    void writeIncompat(long v) throws IOException {
        file.force(true);
        writeField(HDR_INCOMPAT, v);
        file.force(true);
        incompat = v;
    }

    /** Sets the dirty bit before the first metadata change of an image with lazy refcounts (version 3). */
    void markDirty() throws IOException {
        if (version == 3 && lazyRefcounts() && (incompat & INCOMPAT_DIRTY) == 0) {
            writeIncompat(incompat | INCOMPAT_DIRTY);
            dirtySetByUs = true;
        }
    }

    /** Clears the dirty bit when it is set and the file is open read-write. */
    void clearDirty() throws IOException {
        if ((incompat & INCOMPAT_DIRTY) != 0) {
            writeIncompat(incompat & ~INCOMPAT_DIRTY);
            dirtySetByUs = false;
        }
    }

    boolean dirtySetByUs() {
        return dirtySetByUs;
    }

    /**
     * Rewrites the whole header with {@code bfile}/{@code bfmt} as the backing name and format (null: none) and the
     * tables where they are now. Written over the old header in one write; bytes the old header used past the new
     * end are zeroed.
     *
     * @throws ImageException {@code Backing file name too long}; livemon's {@code No space left on device} text
     *     when the extensions or the name do not fit in the first cluster
     */
    void rewrite(String bfile, String bfmt, long size, int l1Entries, long l1Offset, long rtOffset,
                 int rtClusters) throws IOException {
        byte[] h = build(bfile, bfmt, size, l1Entries, l1Offset, rtOffset, rtClusters);
        int len = Math.max(h.length, headerUsed);
        byte[] full = Arrays.copyOf(h, (int) Math.min(clusterSize, len));
        file.write(full, 0, full.length, 0);
        headerUsed = h.length;
    }

    private byte[] build(String bfile, String bfmt, long size, int l1Entries, long l1Offset, long rtOffset,
                         int rtClusters) throws ImageException {
        long cs = clusterSize;
        ByteBuffer b = ByteBuffer.allocate((int) cs);
        b.put(rawHeader);
        b.putInt(0, MAGIC).putInt(4, version);
        b.putInt(20, clusterBits).putLong(24, size).putInt(32, 0);
        b.putInt(36, l1Entries).putLong(40, l1Offset).putLong(48, rtOffset).putInt(56, rtClusters);
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
            int padded = (e.data().length + 7) & ~7;
            if (pos + 8 + padded + 8 > cs) {
                throw new ImageException("Could not update the header of '" + file.filename
                        + "': No space left on device (header extensions do not fit in the first cluster)");
            }
            b.putInt(pos, e.type()).putInt(pos + 4, e.data().length);
            b.put(pos + 8, e.data());
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
}
