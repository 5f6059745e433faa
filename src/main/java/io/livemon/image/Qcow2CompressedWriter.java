package io.livemon.image;

import java.util.Arrays;
import java.util.zip.Deflater;

/**
 * The compression half of qcow2's compressed-cluster writes (QEMU's block/qcow2-threads.c qcow2_zlib_compress, as
 * {@link Qcow2Image#writeCompressed} uses it). The format (docs/interop/qcow2.txt, "Compressed Clusters Descriptor"):
 * a compressed cluster is a raw deflate stream (no zlib header or checksum) of the whole cluster, stored at any byte
 * offset of the file; the L2 entry holds that offset and the number of 512-byte sectors the stream reaches into beyond
 * the first one.
 *
 * <p>QEMU compresses with zlib's default level and a 4 KiB window (windowBits -12). {@link Deflater} has no window
 * option and uses 32 KiB; the stream is still read correctly by QEMU because its reader (qcow2_zlib_decompress)
 * inflates a whole cluster in one call into one output buffer, so back-references reach into that buffer rather than
 * into the 4 KiB window, and zlib only checks the window size for references behind the output buffer. The
 * interoperability test proves it with data whose repeats lie further apart than 4 KiB.
 */
final class Qcow2CompressedWriter {

    private Qcow2CompressedWriter() {
    }

    /**
     * Deflates {@code in}[off, off+len) into a raw deflate stream. Returns null when the stream would be longer
     * than {@code maxLen} bytes: QEMU then writes the cluster uncompressed (it gives zlib an output buffer of
     * cluster size - 1 bytes and falls back when that does not suffice, so pass cluster size - 1).
     */
    static byte[] deflate(byte[] in, int off, int len, int maxLen) {
        Deflater d = new Deflater(Deflater.DEFAULT_COMPRESSION, true);
        try {
            d.setInput(in, off, len);
            d.finish();
            byte[] out = new byte[maxLen];
            int n = 0;
            while (!d.finished()) {
                if (n == out.length) {
                    return null;
                }
                n += d.deflate(out, n, out.length - n);
            }
            return Arrays.copyOf(out, n);
        } finally {
            d.end();
        }
    }
}
