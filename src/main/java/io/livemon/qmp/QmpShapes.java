package io.livemon.qmp;

import io.livemon.block.BlockDevice;
import io.livemon.block.BlockNode;
import io.livemon.block.Event;
import io.livemon.block.JobInfo;
import io.livemon.image.Image;
import io.livemon.image.ImageInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The QAPI result types livemon returns, built from the block layer's state. Members are added in schema order;
 * {@link Json#write} puts them in QEMU's wire order.
 */
final class QmpShapes {
    private QmpShapes() {
    }

    /** BlockJobInfo. */
    static Map<String, Object> blockJobInfo(JobInfo j) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", j.type().qapiName());
        m.put("device", j.id());
        m.put("len", j.len());
        m.put("offset", j.offset());
        m.put("busy", j.busy());
        m.put("paused", j.paused());
        m.put("speed", j.speed());
        m.put("io-status", j.ioStatus());
        m.put("ready", j.ready());
        m.put("status", j.status().qapiName());
        m.put("auto-finalize", j.autoFinalize());
        m.put("auto-dismiss", j.autoDismiss());
        if (j.error() != null) {
            m.put("error", j.error());
        }
        return m;
    }

    /** JobInfo (query-jobs). */
    static Map<String, Object> jobInfo(JobInfo j) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", j.id());
        m.put("type", j.type().qapiName());
        m.put("status", j.status().qapiName());
        m.put("current-progress", j.offset());
        m.put("total-progress", j.len());
        if (j.error() != null) {
            m.put("error", j.error());
        }
        return m;
    }

    /** An event on the wire. */
    static Map<String, Object> event(Event e) {
        Map<String, Object> data = new LinkedHashMap<>();
        for (Map.Entry<String, Object> d : e.data().entrySet()) {
            Object v = d.getValue();
            if (v instanceof Integer i) {
                v = i.longValue();
            } else if (!(v instanceof String || v instanceof Long || v instanceof Boolean)) {
                v = String.valueOf(v);
            }
            data.put(d.getKey(), v);
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("timestamp", Json.obj("seconds", e.seconds(), "microseconds", e.microseconds()));
        m.put("event", e.name());
        m.put("data", data);
        return m;
    }

    /** BlockInfo (query-block). */
    static Map<String, Object> blockInfo(BlockDevice d) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("device", d.id());
        if (d.attachedTo() != null) {
            m.put("qdev", d.attachedTo());
        }
        m.put("type", "unknown");
        m.put("removable", d.removable());
        m.put("locked", false);
        BlockNode root = d.visibleRoot();
        if (root != null) {
            m.put("inserted", blockDeviceInfo(root, d.cacheMode(), false));
        }
        return m;
    }

    /** BlockStats (query-blockstats), members in QAPI order; the guest request counters are zero (see BlockStats). */
    static Map<String, Object> blockStats(io.livemon.block.BlockStats s) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (s.device() != null) {
            m.put("device", s.device());
        }
        if (s.nodeName() != null) {
            m.put("node-name", s.nodeName());
        }
        Map<String, Object> st = new LinkedHashMap<>();
        for (String k : List.of("rd_bytes", "wr_bytes", "unmap_bytes", "rd_operations", "wr_operations",
                "unmap_operations", "flush_operations", "rd_total_time_ns", "wr_total_time_ns",
                "unmap_total_time_ns", "flush_total_time_ns")) {
            st.put(k, 0L);
        }
        st.put("wr_highest_offset", s.wrHighestOffset());
        for (String k : List.of("rd_merged", "wr_merged", "unmap_merged", "failed_rd_operations",
                "failed_wr_operations", "failed_unmap_operations", "failed_flush_operations",
                "invalid_rd_operations", "invalid_wr_operations", "invalid_unmap_operations",
                "invalid_flush_operations")) {
            st.put(k, 0L);
        }
        st.put("account_invalid", s.driveLevel());
        st.put("account_failed", s.driveLevel());
        st.put("timed_stats", List.of());
        m.put("stats", st);
        if ("file".equals(s.driver())) {
            // livemon's file layer never discards (the counters QEMU's file-posix keeps stay zero)
            m.put("driver-specific", Json.obj("driver", "file", "discard-nb-ok", 0L, "discard-nb-failed", 0L,
                    "discard-bytes-ok", 0L));
        }
        if (s.parent() != null) {
            m.put("parent", blockStats(s.parent()));
        }
        if (s.backing() != null) {
            m.put("backing", blockStats(s.backing()));
        }
        return m;
    }

    /** BlockDeviceInfo (query-block's inserted, query-named-block-nodes). */
    static Map<String, Object> blockDeviceInfo(BlockNode n, String cacheMode, boolean flat) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("file", n.role() == BlockNode.Role.PROTOCOL ? n.filename() : n.skipFilters().displayName());
        m.put("node-name", n.name());
        m.put("ro", n.readOnly());
        m.put("drv", n.driver());
        BlockNode fmt = n.role() == BlockNode.Role.FORMAT ? n : null;
        if (fmt != null && fmt.backing() != null) {
            // QEMU 7.2 shows the backing node's name here, not the header's string (which image/backing-filename has)
            m.put("backing_file", fmt.backing().displayName());
        }
        m.put("backing_file_depth", flat || fmt == null ? 0 : n.chainDepth());
        m.put("encrypted", false);
        m.put("detect_zeroes", n.role() == BlockNode.Role.PROTOCOL ? "off" : n.skipFilters().detectZeroes());
        m.put("bps", 0L);
        m.put("bps_rd", 0L);
        m.put("bps_wr", 0L);
        m.put("iops", 0L);
        m.put("iops_rd", 0L);
        m.put("iops_wr", 0L);
        m.put("image", n.role() == BlockNode.Role.PROTOCOL ? fileImageInfo(n) : imageInfo(n, flat));
        String c = cacheMode == null ? "writeback" : cacheMode;
        m.put("cache", Json.obj("writeback", !c.contains("writethrough"), "direct", c.contains("direct"),
                "no-flush", c.contains("ignore flushes")));
        m.put("write_threshold", 0L);
        return m;
    }

    /** ImageInfo of a format (or filter) node, with the backing chain nested unless {@code flat}. */
    static Map<String, Object> imageInfo(BlockNode n, boolean flat) {
        BlockNode node = n.skipFilters();
        Image img = node.image();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("filename", node.displayName());
        m.put("format", n.driver());
        ImageInfo info = null;
        try {
            info = img.info();
        } catch (IOException e) {
            // a node whose header cannot be read still shows what the graph knows
        }
        m.put("dirty-flag", info != null && info.dirty());
        if (info != null) {
            m.put("actual-size", info.diskSize());
        }
        m.put("virtual-size", info != null ? info.virtualSize() : node.size());
        if (info != null && info.clusterSize() > 0) {
            m.put("cluster-size", info.clusterSize());
        }
        String backing = img.backingFileString();
        if (backing != null && !n.isFilter()) {
            m.put("backing-filename", backing);
            m.put("full-backing-filename", fullBackingFilename(img.filename(), backing));
            if (img.backingFormatString() != null) {
                m.put("backing-filename-format", img.backingFormatString());
            }
        }
        if (!flat && !n.isFilter() && node.backing() != null) {
            m.put("backing-image", imageInfo(node.backing(), false));
        }
        if (info != null && info.compat() != null && !n.isFilter()) {
            Map<String, Object> data = new LinkedHashMap<>();
            data.put("compat", info.compat());
            data.put("extended-l2", false);
            data.put("lazy-refcounts", info.lazyRefcounts());
            data.put("corrupt", info.corrupt());
            data.put("refcount-bits", (long) info.refcountBits());
            List<Object> bitmaps = bitmapInfo(img);
            if (!bitmaps.isEmpty()) {
                data.put("bitmaps", bitmaps);
            }
            data.put("compression-type", "zlib");
            m.put("format-specific", Json.obj("type", "qcow2", "data", data));
        }
        return m;
    }

    /** The format-specific {@code bitmaps} list (QEMU's Qcow2BitmapInfo); empty when unreadable or none. */
    private static List<Object> bitmapInfo(Image img) {
        List<Object> r = new ArrayList<>();
        try {
            for (io.livemon.image.BitmapInfo b : img.bitmapInfo()) {
                r.add(Json.obj("flags", new ArrayList<Object>(b.flags()), "name", b.name(),
                        "granularity", b.granularity()));
            }
        } catch (IOException e) {
            return List.of();
        }
        return r;
    }

    /** ImageInfo of a protocol ("file") node: the host file itself. */
    static Map<String, Object> fileImageInfo(BlockNode n) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (n.driver().equals("null-co")) {
            // a device that stores nothing: its size is what it was given, and it has no file to measure
            m.put("filename", n.filename());
            m.put("format", "null-co");
            m.put("virtual-size", n.image().size());
            return m;
        }
        m.put("filename", n.filename());
        m.put("format", "file");
        m.put("dirty-flag", false);
        long length = 0;
        long actual = 0;
        try {
            length = Files.size(n.image().path());
            actual = n.image().info().diskSize();
        } catch (IOException e) {
            actual = length;
        }
        m.put("actual-size", actual);
        // QEMU reports a file's length in whole 512-byte sectors
        m.put("virtual-size", (length + 511) / 512 * 512);
        return m;
    }

    /** QEMU's path_combine: a relative backing name is relative to the overlay's directory. */
    static String fullBackingFilename(String overlay, String backing) {
        if (backing.startsWith("/")) {
            return backing;
        }
        int slash = overlay.lastIndexOf('/');
        return slash < 0 ? backing : overlay.substring(0, slash + 1) + backing;
    }

    static List<Object> list(List<Map<String, Object>> l) {
        return new ArrayList<>(l);
    }
}
