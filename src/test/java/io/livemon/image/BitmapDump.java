package io.livemon.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Test helper: reads the persistent dirty bitmaps of a qcow2 file straight from the bytes (independently of
 * livemon's own code), following docs/interop/qcow2.txt: header extension 0x23852875, directory, bitmap tables,
 * data clusters (bit i = byte i/8, bit i%8). Public so block tests can use it.
 */
public final class BitmapDump {
    /** One bitmap: its directory flags (1 in_use, 2 auto), granularity and dirty granules. */
    public record Bitmap(String name, int flags, int granularityBits, BitSet dirty) {
        public boolean inUse() {
            return (flags & 1) != 0;
        }

        public boolean auto() {
            return (flags & 2) != 0;
        }
    }

    private BitmapDump() {
    }

    /** The autoclear feature field of the header. */
    public static long autoclear(Path file) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer h = ByteBuffer.allocate(104);
            c.read(h, 0);
            return h.getLong(88);
        }
    }

    /** Every bitmap of the directory, by name (empty when the image has no bitmaps extension). */
    public static Map<String, Bitmap> read(Path file) throws IOException {
        Map<String, Bitmap> r = new LinkedHashMap<>();
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer h = ByteBuffer.allocate(4096);
            c.read(h, 0);
            int cb = h.getInt(20);
            long cs = 1L << cb;
            long size = h.getLong(24);
            int pos = h.getInt(100);
            while (true) {
                int type = h.getInt(pos);
                int len = h.getInt(pos + 4);
                if (type == 0) {
                    return r;
                }
                if (type == 0x23852875) {
                    int nb = h.getInt(pos + 8);
                    long dsz = h.getLong(pos + 16);
                    long doff = h.getLong(pos + 24);
                    ByteBuffer d = ByteBuffer.allocate((int) dsz);
                    c.read(d, doff);
                    int p = 0;
                    for (int i = 0; i < nb; i++) {
                        long toff = d.getLong(p);
                        int tsz = d.getInt(p + 8);
                        int flags = d.getInt(p + 12);
                        int gran = d.get(p + 17);
                        int ns = d.getShort(p + 18);
                        int es = d.getInt(p + 20);
                        String name = new String(d.array(), p + 24 + es, ns, StandardCharsets.UTF_8);
                        p += (24 + es + ns + 7) & ~7;
                        ByteBuffer t = ByteBuffer.allocate(tsz * 8);
                        c.read(t, toff);
                        long nbits = (size + (1L << gran) - 1) >> gran;
                        BitSet dirty = new BitSet();
                        for (int k = 0; k < tsz; k++) {
                            long e = t.getLong(k * 8);
                            long off = e & 0x00fffffffffffe00L;
                            byte[] data = new byte[(int) cs];
                            if (off != 0) {
                                c.read(ByteBuffer.wrap(data), off);
                            } else if ((e & 1) != 0) {
                                java.util.Arrays.fill(data, (byte) 0xff);
                            }
                            for (long bit = 0; bit < cs * 8; bit++) {
                                long g = k * cs * 8 + bit;
                                if (g < nbits && (data[(int) (bit / 8)] >> (bit % 8) & 1) != 0) {
                                    dirty.set((int) g);
                                }
                            }
                        }
                        r.put(name, new Bitmap(name, flags, gran, dirty));
                    }
                }
                pos += 8 + ((len + 7) & ~7);
            }
        }
    }

    /** The granules at {@code 2^gran} that byte range [off, off+len) touches, added to {@code into}. */
    public static void touch(BitSet into, int gran, long off, long len) {
        if (len > 0) {
            into.set((int) (off >> gran), (int) (((off + len - 1) >> gran) + 1));
        }
    }
}
