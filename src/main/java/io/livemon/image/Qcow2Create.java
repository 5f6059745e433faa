package io.livemon.image;

import static io.livemon.image.Qcow2Format.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Creating a qcow2 image ({@code qemu-img create -f qcow2}; QEMU's block/qcow2.c {@code qcow2_co_create}): the
 * options checked with QEMU's messages, the header with its extensions (backing format, feature name table), the
 * first refcount structures. The file itself is made by {@link ImageCreation}, which never harms an existing file.
 */
final class Qcow2Create {
    private Qcow2Create() {
    }

    /**
     * Writes a new, empty qcow2 image (see {@link Images#createQcow2} for the size rules): a header cluster, a
     * one-cluster refcount table and one refcount block, then sizes the L1 table through {@link Qcow2Image}.
     *
     * @return the virtual size of the new image (bytes)
     * @throws ImageException QEMU's texts for bad options ({@code Cluster size must be a power of two between 512
     *     and 2048k}, {@code Parameter 'compat' does not accept value 'X'}, {@code Image size must be a multiple of
     *     512 bytes}, ...) and {@code Could not open backing file: ...}; {@link ImageCreation}'s for the target
     */
    static long create(Path cwd, String filename, long size, Qcow2CreateOptions o) throws IOException {
        if (o == null) {
            o = Qcow2CreateOptions.defaults();
        }
        long cs = o.effectiveClusterSize();
        if (Long.bitCount(cs) != 1 || cs < 512 || cs > (2 << 20)) {
            throw new ImageException("Cluster size must be a power of two between 512 and 2048k");
        }
        String compat = o.effectiveCompat();
        int version;
        if (compat.equals("1.1") || compat.equals("v3")) {
            version = 3;
        } else if (compat.equals("0.10") || compat.equals("v2")) {
            version = 2;
        } else {
            throw new ImageException("Parameter 'compat' does not accept value '" + compat + "'");
        }
        int rb = o.effectiveRefcountBits();
        if (Integer.bitCount(rb) != 1 || rb > 64) {
            throw new ImageException("Refcount width must be a power of two and may not exceed 64 bits");
        }
        if (version == 2 && rb != 16) {
            throw new ImageException("Different refcount widths than 16 bits require compatibility level 1.1 "
                    + "or above (use version=v3 or greater)");
        }
        if (version == 2 && o.lazyRefcounts()) {
            throw new ImageException("Lazy refcounts only supported with compatibility level 1.1 and above "
                    + "(use version=v3 or greater)");
        }
        String bfile = o.backingFile();
        String bfmt = o.backingFormat();
        if (bfile != null && !bfile.isEmpty()) {
            String bname = Images.pathCombine(filename, bfile);
            if (bfmt == null || size < 0) {
                Image b;
                try {
                    b = Images.open(cwd, bname, bfmt, true);
                } catch (ImageException e) {
                    throw new ImageException(Images.BACKING_PREFIX + e.getMessage(), e);
                }
                try {
                    if (bfmt == null) {
                        bfmt = b.format();
                    }
                    if (size < 0) {
                        size = b.size();
                    }
                } finally {
                    b.close();
                }
            }
            if (bfile.getBytes(StandardCharsets.UTF_8).length > 1023) {
                throw new ImageException("Backing file name too long");
            }
        } else {
            bfile = null;
            bfmt = null;
        }
        if (size < 0 || (size & 511) != 0) {
            throw new ImageException("Image size must be a multiple of 512 bytes");
        }
        int clusterBits = Long.numberOfTrailingZeros(cs);
        int order = Integer.numberOfTrailingZeros(rb);
        // header cluster
        ByteBuffer h = ByteBuffer.allocate((int) cs);
        h.putInt(0, MAGIC).putInt(4, version);
        h.putInt(20, clusterBits).putLong(24, 0);
        h.putInt(36, 0).putLong(40, 0);
        h.putLong(48, cs).putInt(56, 1);
        int pos;
        if (version == 3) {
            h.putLong(72, 0).putLong(80, o.lazyRefcounts() ? COMPAT_LAZY : 0).putLong(88, 0);
            h.putInt(96, order).putInt(100, 112);
            pos = 112;
        } else {
            pos = 72;
        }
        if (bfmt != null) {
            byte[] f = bfmt.getBytes(StandardCharsets.UTF_8);
            h.putInt(pos, EXT_BACKING_FORMAT).putInt(pos + 4, f.length);
            h.put(pos + 8, f);
            pos += 8 + ((f.length + 7) & ~7);
        }
        if (version == 3) {
            byte[] ft = featureTable();
            if (pos + 8 + ft.length + 8 < cs) {
                h.putInt(pos, EXT_FEATURE_TABLE).putInt(pos + 4, ft.length);
                h.put(pos + 8, ft);
                pos += 8 + ft.length;
            }
        }
        pos += 8;
        if (bfile != null && pos + bfile.getBytes(StandardCharsets.UTF_8).length > cs) {
            throw new ImageException("Backing file name too long for the cluster size");
        }
        int headerEnd = pos;
        long virtualSize = size;
        String backingName = bfile;
        ImageCreation.create(cwd, filename, "qcow2", (file, name) -> {
            try (FileChannel c = FileChannel.open(file, StandardOpenOption.WRITE)) {
                if (backingName != null) {
                    byte[] n = backingName.getBytes(StandardCharsets.UTF_8);
                    h.put(headerEnd, n);
                    h.putLong(8, headerEnd).putInt(16, n.length);
                }
                ChannelIo.writeFully(c, h, 0);
                ByteBuffer rt = ByteBuffer.allocate((int) cs);
                rt.putLong(0, 2 * cs);
                ChannelIo.writeFully(c, rt, cs);
                ByteBuffer blk = ByteBuffer.allocate((int) cs);
                // refcount 1 for clusters 0, 1 and 2
                for (int i = 0; i < 3; i++) {
                    setRefcount(blk, order, i);
                }
                ChannelIo.writeFully(c, blk, 2 * cs);
            }
            Qcow2Image img = Qcow2Image.open(file, name, false, Qcow2Image.Options.defaults());
            try {
                img.initialSize(virtualSize);
            } finally {
                img.close();
            }
        });
        return size;
    }

    private static void setRefcount(ByteBuffer blk, int order, int idx) {
        int bits = 1 << order;
        if (bits < 8) {
            int perByte = 8 / bits;
            int b = blk.get(idx / perByte) | (1 << ((idx % perByte) * bits));
            blk.put(idx / perByte, (byte) b);
        } else {
            int bytes = bits / 8;
            blk.put(idx * bytes + bytes - 1, (byte) 1);
        }
    }

    private static byte[] featureTable() {
        Object[][] f = {
            {0, 0, "dirty bit"}, {0, 1, "corrupt bit"}, {0, 2, "external data file"},
            {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
            {2, 0, "bitmaps"}, {2, 1, "raw external data"},
        };
        ByteBuffer b = ByteBuffer.allocate(48 * f.length);
        for (int i = 0; i < f.length; i++) {
            b.put(i * 48, (byte) (int) (Integer) f[i][0]);
            b.put(i * 48 + 1, (byte) (int) (Integer) f[i][1]);
            b.put(i * 48 + 2, ((String) f[i][2]).getBytes(StandardCharsets.US_ASCII));
        }
        return b.array();
    }
}
