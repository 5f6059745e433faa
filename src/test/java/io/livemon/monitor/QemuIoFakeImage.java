package io.livemon.monitor;

import io.livemon.image.Allocation;
import io.livemon.image.BlockStatus;
import io.livemon.image.Image;
import io.livemon.image.ImageInfo;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/** A tiny in-memory single-layer image for qemu-io tests: 64 KiB clusters, optional backing fake. */
final class QemuIoFakeImage implements Image {
    static final int CLUSTER = 65536;
    private byte[] data;
    private BlockStatus.Kind[] kinds;
    private Image backing;
    int flushes;

    QemuIoFakeImage(long size) {
        data = new byte[(int) size];
        kinds = new BlockStatus.Kind[(int) ((size + CLUSTER - 1) / CLUSTER)];
        Arrays.fill(kinds, BlockStatus.Kind.UNALLOCATED);
    }

    QemuIoFakeImage withBacking(Image b) {
        backing = b;
        return this;
    }

    /** Fills [offset, offset+len) with a byte and marks the clusters allocated. */
    QemuIoFakeImage fill(long offset, long len, int value) {
        byte[] b = new byte[(int) len];
        Arrays.fill(b, (byte) value);
        write(offset, b, 0, b.length);
        return this;
    }

    @Override public String filename() { return "fake.qcow2"; }
    @Override public Path path() { return Path.of("fake.qcow2"); }
    @Override public String format() { return "qcow2"; }
    @Override public long size() { return data.length; }
    @Override public boolean isReadOnly() { return false; }
    @Override public void setReadOnly(boolean readOnly) { }
    @Override public Image backing() { return backing; }
    @Override public String backingFileString() { return null; }
    @Override public String backingFormatString() { return null; }

    @Override
    public void read(long offset, byte[] buf, int bufOffset, int len) throws IOException {
        for (int i = 0; i < len; i++) {
            long o = offset + i;
            BlockStatus.Kind k = kinds[(int) (o / CLUSTER)];
            if (k == BlockStatus.Kind.DATA) {
                buf[bufOffset + i] = data[(int) o];
            } else if (k == BlockStatus.Kind.ZERO || backing == null) {
                buf[bufOffset + i] = 0;
            } else {
                backing.read(o, buf, bufOffset + i, 1);
            }
        }
    }

    @Override
    public void write(long offset, byte[] buf, int bufOffset, int len) {
        for (int i = 0; i < len; i++) {
            long o = offset + i;
            data[(int) o] = buf[bufOffset + i];
            kinds[(int) (o / CLUSTER)] = BlockStatus.Kind.DATA;
        }
    }

    @Override
    public void writeZeroes(long offset, long len) {
        for (long o = offset; o < offset + len; o++) {
            data[(int) o] = 0;
        }
        for (long c = (offset + CLUSTER - 1) / CLUSTER; (c + 1) * CLUSTER <= offset + len; c++) {
            kinds[(int) c] = BlockStatus.Kind.ZERO;
        }
    }

    @Override
    public void discard(long offset, long len) {
        for (long c = (offset + CLUSTER - 1) / CLUSTER; (c + 1) * CLUSTER <= offset + len; c++) {
            kinds[(int) c] = BlockStatus.Kind.UNALLOCATED;
        }
    }

    @Override public void flush() { flushes++; }

    @Override
    public BlockStatus blockStatus(long offset, long maxLen) {
        int c = (int) (offset / CLUSTER);
        BlockStatus.Kind k = kinds[c];
        long end = offset;
        while (end < data.length && end - offset < maxLen && kinds[(int) (end / CLUSTER)] == k) {
            end = (end / CLUSTER + 1) * CLUSTER;
        }
        return new BlockStatus(k, Math.min(Math.min(end, data.length) - offset, maxLen));
    }

    @Override
    public Allocation isAllocatedAbove(long offset, long maxLen, Image base) {
        throw new UnsupportedOperationException();
    }

    @Override public long copyUpFromBacking(long offset, long len) { throw new UnsupportedOperationException(); }
    @Override public void changeBackingFile(Image b, String s, String f) { throw new UnsupportedOperationException(); }
    @Override public void setBacking(Image b) { backing = b; }
    @Override public void resize(long newSize) { throw new UnsupportedOperationException(); }
    @Override public ImageInfo info() { throw new UnsupportedOperationException(); }
    @Override public void close() { }
}
