package io.livemon.image;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * QEMU's {@code null-co} protocol driver (block/null.c): a device of a given size that stores nothing. Writes,
 * zero writes and discards succeed and are dropped; reads return zeroes (QEMU returns zeroes with
 * {@code read-zeroes=on} and leaves the buffer as it was otherwise: zeroes are one of its answers). Its block status
 * says zeroes with {@code read-zeroes=on} and "not allocated" otherwise, as null_co_block_status does, so a job
 * copies nothing from it. Its name is {@code null-co://}. Thread-safe: it keeps no data.
 */
public final class NullImage implements Image {
    /** null-co's default size: 1 GiB (BDRV_... NULL_OPT_SIZE default 1 << 30). */
    public static final long DEFAULT_SIZE = 1L << 30;

    private final long size;
    private final boolean readZeroes;
    private volatile boolean readOnly;
    private final java.util.concurrent.atomic.AtomicLong writeEnd = new java.util.concurrent.atomic.AtomicLong();

    /**
     * @param size       bytes, 0 or more
     * @param readZeroes QEMU's {@code read-zeroes}: block status reports zeroes
     */
    public NullImage(long size, boolean readZeroes, boolean readOnly) {
        this.size = size;
        this.readZeroes = readZeroes;
        this.readOnly = readOnly;
    }

    /**
     * QEMU's name: {@code null-co://}, or a {@code json:} description when options were given (newcomer trial:
     * {@code json:{"driver": "null-co", "size": 1000}}).
     */
    @Override
    public String filename() {
        if (size == DEFAULT_SIZE && !readZeroes) {
            return "null-co://";
        }
        return "json:{\"driver\": \"null-co\"" + (readZeroes ? ", \"read-zeroes\": true" : "")
                + (size != DEFAULT_SIZE ? ", \"size\": " + size : "") + "}";
    }
    @Override public Path path() { return Path.of("null-co:"); }
    @Override public String format() { return "null-co"; }
    @Override public long size() { return size; }
    @Override public boolean isReadOnly() { return readOnly; }
    @Override public void setReadOnly(boolean ro) { this.readOnly = ro; }
    @Override public Image backing() { return null; }
    @Override public String backingFileString() { return null; }
    @Override public String backingFormatString() { return null; }

    private void check(long offset, long len) throws ImageException {
        if (offset < 0 || len < 0 || offset + len > size) {
            throw new ImageException("Input/output error");
        }
    }

    private void checkWritable() throws ImageException {
        if (readOnly) {
            throw new ImageException("Permission denied");
        }
    }

    @Override
    public void read(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        check(offset, len);
        Arrays.fill(buf, bufOffset, bufOffset + len, (byte) 0);
    }

    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        writeZeroes(offset, len);
    }

    @Override
    public void writeZeroes(long offset, long len) throws IOException {
        checkWritable();
        check(offset, len);
        writeEnd.accumulateAndGet(offset + len, Math::max);
    }

    @Override
    public void discard(long offset, long len) throws IOException {
        writeZeroes(offset, len);
    }

    @Override
    public long highestWriteEnd() {
        return writeEnd.get();
    }

    @Override
    public void flush() {
    }

    @Override
    public BlockStatus blockStatus(long offset, long maxLen) {
        long n = Math.max(0, Math.min(maxLen, size - offset));
        return new BlockStatus(readZeroes ? BlockStatus.Kind.ZERO : BlockStatus.Kind.UNALLOCATED, n);
    }

    @Override
    public Allocation isAllocatedAbove(long offset, long maxLen, Image base) {
        BlockStatus s = blockStatus(offset, maxLen);
        return new Allocation(s.allocated() && base != this, s.length());
    }

    @Override
    public long copyUpFromBacking(long offset, long len) {
        return 0;
    }

    @Override
    public void changeBackingFile(Image newBacking, String backingFileString, String backingFormat)
            throws IOException {
        throw new ImageException("Operation not supported");
    }

    @Override
    public void setBacking(Image backing) {
        // a protocol node has no backing
    }

    @Override
    public void resize(long newSize) throws IOException {
        throw new ImageException("Operation not supported");
    }

    @Override
    public ImageInfo info() {
        return new ImageInfo("null-co", size, 0, null, 0, false, false, false, 0);
    }

    @Override
    public void close() {
    }
}
