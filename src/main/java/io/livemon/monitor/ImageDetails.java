package io.livemon.monitor;

import io.livemon.block.BlockNode;
import io.livemon.image.BitmapInfo;
import io.livemon.image.ImageInfo;
import java.io.IOException;
import java.io.PrintStream;
import java.util.List;

/** The {@code Images:} part of {@code info block -v}: a qemu-img-info-like block for each image of the chain. */
final class ImageDetails {
    private ImageDetails() {
    }

    static void print(PrintStream out, BlockNode top) {
        out.println();
        out.println("Images:");
        for (BlockNode n = top.skipFilters(); n != null; n = n.backing()) {
            ImageInfo info;
            try {
                info = n.image().info();
            } catch (IOException e) {
                out.println("image: " + n.filename());
                out.println("(unreadable: " + e.getMessage() + ")");
                continue;
            }
            out.println("image: " + n.displayName());
            out.println("file format: " + info.format());
            out.println("virtual size: " + Sizes.human(info.virtualSize()) + " (" + info.virtualSize() + " bytes)");
            out.println("disk size: " + Sizes.human(info.diskSize()));
            if (info.clusterSize() > 0) {
                out.println("cluster_size: " + info.clusterSize());
            }
            if (n.backing() != null) {
                out.println("backing file: " + n.image().backingFileString());
                if (n.image().backingFormatString() != null) {
                    out.println("backing file format: " + n.image().backingFormatString());
                }
            }
            if (info.compat() != null) {
                out.println("Format specific information:");
                out.println("    compat: " + info.compat());
                out.println("    compression type: zlib");
                out.println("    lazy refcounts: " + info.lazyRefcounts());
                printBitmaps(out, n);
                out.println("    refcount bits: " + info.refcountBits());
                out.println("    corrupt: " + info.corrupt());
                out.println("    extended l2: false");
            }
        }
    }

    /** The {@code bitmaps:} list of qemu-img info's human output (nothing when the image has none). */
    private static void printBitmaps(PrintStream out, BlockNode n) {
        List<BitmapInfo> bitmaps;
        try {
            bitmaps = n.image().bitmapInfo();
        } catch (IOException e) {
            return; // QEMU leaves out the whole format-specific part then; the rest of it is still worth showing
        }
        if (bitmaps.isEmpty()) {
            return;
        }
        out.println("    bitmaps:");
        for (int i = 0; i < bitmaps.size(); i++) {
            BitmapInfo b = bitmaps.get(i);
            out.println("        [" + i + "]:");
            out.println("            flags:");
            for (int k = 0; k < b.flags().size(); k++) {
                out.println("                [" + k + "]: " + b.flags().get(k));
            }
            out.println("            name: " + b.name());
            out.println("            granularity: " + b.granularity());
        }
    }
}
