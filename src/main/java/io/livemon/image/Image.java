package io.livemon.image;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;

/**
 * One opened disk image file (a qcow2 or raw layer) with, optionally, the image it is backed by.
 *
 * <p>Reads go through the backing chain: what this layer does not allocate comes from {@link #backing()},
 * and reads past the end of a shorter backing image return zeroes. Writes land in this layer only, with
 * copy-on-write of partial clusters from the backing chain. Every method may be called from several
 * threads at once; requests on overlapping ranges are serialised by the implementation.
 */
public interface Image extends Closeable {

    /** The file name as the image was opened (QEMU shows this string, e.g. {@code file-D.img}). */
    String filename();

    /** The file on disk. */
    Path path();

    /** {@code "qcow2"} or {@code "raw"}. */
    String format();

    /** Guest-visible size in bytes. */
    long size();

    boolean isReadOnly();

    /** Reopens the image read-write or read-only (as QEMU does for an intermediate stream target). */
    void setReadOnly(boolean readOnly) throws IOException;

    /** The backing image, or null. */
    Image backing();

    /** The backing file name as stored in the header, or null when there is none. */
    String backingFileString();

    /** The backing format as stored in the header extension, or null. */
    String backingFormatString();

    /** Reads {@code len} guest bytes at {@code offset} through the chain. Offset + len must be within size(). */
    void read(long offset, byte[] buf, int bufOffset, int len) throws IOException;

    /**
     * Reads {@code dst.remaining()} guest bytes at {@code offset} through the chain into {@code dst}, advancing its
     * position. The qcow2 and raw implementations read into a direct buffer without the extra copy a
     * {@code byte[]} costs; this default goes through {@link #read(long, byte[], int, int)}.
     */
    default void read(long offset, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        if (dst.hasArray()) {
            read(offset, dst.array(), dst.arrayOffset() + dst.position(), len);
            dst.position(dst.position() + len);
        } else {
            byte[] b = new byte[len];
            read(offset, b, 0, len);
            dst.put(b);
        }
    }

    /**
     * End (guest bytes) of the highest write, zero write or discard this layer took since it was opened, 0 before
     * any: QEMU's {@code wr_highest_offset} of the format node (block/io.c bdrv_co_write_req_finish counts every
     * write, a job's and qemu-io's too).
     */
    default long highestWriteEnd() {
        return 0;
    }

    /**
     * End (bytes of the image file) of the highest write into the file since it was opened, metadata included: the
     * {@code wr_highest_offset} of the protocol node under the format node (what a management tool watches to grow
     * a thin volume). For raw it equals {@link #highestWriteEnd()}.
     */
    default long highestHostWriteEnd() {
        return highestWriteEnd();
    }

    /** Writes guest bytes into this layer. */
    void write(long offset, byte[] buf, int bufOffset, int len) throws IOException;

    /**
     * Whether {@link #writeCompressed} stores compressed clusters (QEMU's bdrv_supports_compressed_writes): qcow2
     * does, raw does not.
     */
    default boolean supportsCompressedWrites() {
        return false;
    }

    /**
     * Writes guest bytes as compressed clusters (QEMU's BDRV_REQ_WRITE_COMPRESSED, block/qcow2.c
     * qcow2_co_pwritev_compressed_part). {@code offset} must be cluster-aligned and {@code len} a multiple of the
     * cluster size unless the range ends at the image end. Each cluster is compressed on its own; a cluster that does
     * not shrink is written uncompressed, as QEMU does. Compression never overwrites: a cluster already allocated in
     * this layer fails with QEMU's {@code Input/output error}.
     *
     * @throws ImageException {@code Operation not supported} for formats without compressed clusters,
     *                        {@code Invalid argument} for an unaligned request
     */
    default void writeCompressed(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        throw new ImageException("Operation not supported");
    }

    /** Makes the range read as zeroes (qcow2: zero clusters where whole clusters are covered). */
    void writeZeroes(long offset, long len) throws IOException;

    /**
     * Discards the range in this layer. For qcow2 whole clusters become unallocated (or zero clusters when the
     * image has a backing file, so that the backing data does not show through — as QEMU does); partial
     * clusters are left as they are.
     */
    void discard(long offset, long len) throws IOException;

    /** Makes every completed write durable (data, then metadata, then fsync). */
    void flush() throws IOException;

    /**
     * Allocation status of this layer only at {@code offset}: the kind of the run that starts there and its length
     * (at most {@code maxLen}, at least 1 byte unless offset == size). Must skip huge unallocated regions without
     * visiting clusters one by one (an unallocated L2 table covers its whole range at once).
     */
    BlockStatus blockStatus(long offset, long maxLen) throws IOException;

    /**
     * The block status answer QEMU's driver gives for {@code offset} (bytes; at most {@code maxLen}): as
     * {@link #blockStatus}, but a run ends where QEMU's ends too. For qcow2 that is also the end of the L2 table, a
     * data cluster that does not follow the previous one in the file, or a compressed cluster (qcow2-cluster.c
     * qcow2_get_host_offset); a raw image answers as {@link #blockStatus}. Jobs whose steps QEMU cuts by these
     * answers (a throttled stream, an intermediate commit) cut theirs here too, so that they sleep where QEMU's do.
     */
    default BlockStatus qemuBlockStatus(long offset, long maxLen) throws IOException {
        return blockStatus(offset, maxLen);
    }

    /**
     * Whether the range starting at {@code offset} is allocated in this image or any image of its chain above
     * {@code base} (exclusive; null base = the whole chain), and for how many bytes that answer holds
     * (at most maxLen). An allocated or zero run counts as allocated, as in QEMU.
     */
    Allocation isAllocatedAbove(long offset, long maxLen, Image base) throws IOException;

    /**
     * Copies the guest-visible data of [offset, offset+len) from the backing chain into every cluster of this layer
     * in that range that is still unallocated here, atomically with respect to guest writes on this image (a guest
     * write that lands first is never overwritten; one that comes later waits). This is the stream job's copy step.
     * Returns the number of bytes actually written to this layer.
     */
    long copyUpFromBacking(long offset, long len) throws IOException;

    /**
     * The stream job's copy step over a whole range: copies up (as {@link #copyUpFromBacking(long, long)}) every
     * cluster of [offset, offset+len) that is unallocated in this layer and allocated in the backing chain above
     * {@code base} (exclusive; null = the whole chain), leaving everything else alone. Implementations may batch the
     * copies (one flush for many runs). Returns the number of guest bytes copied.
     */
    default long copyUpFromBacking(long offset, long len, Image base) throws IOException {
        long end = offset + len;
        long copied = 0;
        long pos = offset;
        while (pos < end) {
            BlockStatus st = blockStatus(pos, end - pos);
            long n = Math.max(1, Math.min(st.length(), end - pos));
            if (!st.allocated() && backing() != null) {
                Allocation a = backing().isAllocatedAbove(pos, n, base);
                n = Math.max(1, Math.min(a.length(), n));
                if (a.allocated()) {
                    copied += copyUpFromBacking(pos, n);
                }
            }
            pos += n;
        }
        return copied;
    }

    /**
     * As {@link #copyUpFromBacking(long, long, Image)}, with a caller-owned copy buffer that the implementation may
     * use instead of allocating one per call (the stream job passes one direct buffer for its whole run). The
     * buffer's content, position and limit are undefined afterwards; it must not be shared by concurrent calls.
     */
    default long copyUpFromBacking(long offset, long len, Image base, ByteBuffer buffer) throws IOException {
        return copyUpFromBacking(offset, len, base);
    }

    /**
     * Makes {@code newBacking} the backing image of this one (null: none) and rewrites the header's backing file
     * string and backing format (null format: no format extension). In-flight requests finish first.
     */
    void changeBackingFile(Image newBacking, String backingFileString, String backingFormat) throws IOException;

    /** Replaces the in-memory backing pointer without touching the header (used when opening chains). */
    /**
     * Tells the image whether the drive above it holds write permission in QEMU's model (a BlockBackend whose
     * permissions a qemu-io write or discard extended, as QEMU's qemu-io-cmds.c command() does, for good). Only the
     * lock error QEMU would give a new writer of the same file depends on it (see {@link ImageLocks}); livemon's own
     * protection does not. Default: nothing to record.
     */
    default void setBackendWritePermission(boolean held) {
    }

    /**
     * The blkdebug layer this image's file is reached through (a {@code blkdebug:} filename or a blkdebug node),
     * where qemu-io's {@code break}/{@code resume} set breakpoints; null when there is none. QEMU looks for it down
     * the primary children (block.c bdrv_debug_breakpoint); livemon's layers have one file each.
     */
    default BlkdebugRules blkdebugRules() {
        return null;
    }

    void setBacking(Image backing);

    /**
     * Empties this layer (QEMU's bdrv_make_empty, used by commit): every cluster becomes unallocated so that the
     * backing file shows through again, and the clusters are freed. Not supported by raw images.
     */
    default void makeEmpty() throws IOException {
        throw new ImageException("Operation not supported");
    }

    /** Grows or shrinks the guest-visible size. */
    void resize(long newSize) throws IOException;

    /** Facts for {@code info block -v} / query-named-block-nodes: cluster size, compat, refcount bits, dirty... */
    ImageInfo info() throws IOException;

    /**
     * The persistent dirty bitmaps stored in this layer's file, as {@code qemu-img info} lists them (empty for raw
     * images and for qcow2 images without a valid bitmaps extension).
     */
    default List<BitmapInfo> bitmapInfo() throws IOException {
        return List.of();
    }

    /** Closes this layer only (not its backing image); clears the dirty bit if set. */
    @Override
    void close() throws IOException;
}
