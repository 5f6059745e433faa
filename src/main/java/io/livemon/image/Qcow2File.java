package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The file under a qcow2 layer (QEMU's {@code bs->file}): every read and write of the layer's data and metadata goes
 * through here, so the highest write is counted in one place (the file node's {@code wr_highest_offset}) and the
 * metadata sync policy ({@link Qcow2Image.Options#syncMetadata()}) is applied in one place.
 */
final class Qcow2File {
    /** The open channel; replaced only by a reopen, under the layer's op write lock. */
    private volatile FileChannel ch;
    final String filename;
    private final boolean syncMetadata;
    /** End (host-file bytes) of the highest write into the file since open. */
    private final AtomicLong hostWriteEnd = new AtomicLong();

    Qcow2File(FileChannel ch, String filename, boolean syncMetadata) {
        this.ch = ch;
        this.filename = filename;
        this.syncMetadata = syncMetadata;
    }

    FileChannel channel() {
        return ch;
    }

    /** Swaps in a channel reopened with other access; the caller closes the old one. */
    void replaceChannel(FileChannel n) {
        ch = n;
    }

    long size() throws IOException {
        return ch.size();
    }

    void read(byte[] b, int off, int len, long pos) throws IOException {
        ChannelIo.readAt(ch, b, off, len, pos);
    }

    void read(ByteBuffer b, int off, int len, long pos) throws IOException {
        ChannelIo.readAt(ch, b, off, len, pos);
    }

    long[] readLongs(long off, int n) throws IOException {
        return ChannelIo.readLongs(ch, off, n);
    }

    void write(byte[] b, int off, int len, long pos) throws IOException {
        write(ByteBuffer.wrap(b, off, len), pos);
    }

    void write(ByteBuffer bb, long pos) throws IOException {
        long end = pos + bb.remaining();
        ChannelIo.writeFully(ch, bb, pos);
        hostWriteEnd.accumulateAndGet(end, Math::max);
    }

    /** {@link #write(ByteBuffer, long)} for bulk data, in {@link ChannelIo#IO_PIECE} system calls. */
    void writeInPieces(ByteBuffer bb, long pos) throws IOException {
        long end = pos + bb.remaining();
        ChannelIo.writeInPieces(ch, bb, pos);
        hostWriteEnd.accumulateAndGet(end, Math::max);
    }

    void writeLong(long pos, long v) throws IOException {
        write(ByteBuffer.allocate(8).putLong(0, v), pos);
    }

    /** {@code fsync} (data only when {@code metadata} is false: {@code fdatasync}). */
    void force(boolean metadata) throws IOException {
        ch.force(metadata);
    }

    /**
     * The barrier between data and the metadata that points at it, and between a new table and its pointer: a sync
     * when the layer was opened with {@code syncMetadata}, nothing otherwise (see {@link Qcow2Image.Options}).
     */
    void syncMeta() throws IOException {
        if (syncMetadata) {
            ch.force(false);
        }
    }

    long highestWriteEnd() {
        return hostWriteEnd.get();
    }

    void close() throws IOException {
        ch.close();
    }
}
