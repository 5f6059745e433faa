package io.livemon.monitor;

import io.livemon.block.BlockDevice;
import io.livemon.block.BlockNode;
import io.livemon.block.JobInfo;
import io.livemon.block.JobType;
import io.livemon.Version;
import java.io.PrintStream;
import java.util.List;

/** Handlers of the {@code info} items. */
final class InfoCommands {
    private InfoCommands() {
    }

    static void version(HmpSession s, ParsedArgs a) {
        s.out().println(Version.QEMU_VERSION + Version.PACKAGE);
    }

    /** QEMU's {@code info history}: each line as {@code N: 'LINE'}, oldest first. */
    static void history(HmpSession s, ParsedArgs a) {
        List<String> lines = s.history().lines();
        for (int i = 0; i < lines.size(); i++) {
            s.out().println(i + ": '" + lines.get(i) + "'");
        }
    }

    static void status(HmpSession s, ParsedArgs a) {
        s.out().println(s.startedPaused() ? "VM status: paused (prelaunch)" : "VM status: running");
    }

    static void blockstats(HmpSession s, ParsedArgs a) {
        // Rendered from query-blockstats as QEMU's hmp_info_blockstats. Only guest devices are counted, and livemon
        // has none: qemu-io I/O is not counted, as in QEMU.
        for (io.livemon.block.BlockStats st : s.graph().blockStats(false)) {
            s.out().println(st.device() + ": rd_bytes=0 wr_bytes=0 rd_operations=0 wr_operations=0 flush_operations=0"
                    + " wr_total_time_ns=0 rd_total_time_ns=0 flush_total_time_ns=0 rd_merged=0 wr_merged=0"
                    + " idle_time_ns=0");
        }
    }

    static void blockJobs(HmpSession s, ParsedArgs a) {
        List<JobInfo> jobs = s.graph().jobInfos();
        if (jobs.isEmpty()) {
            s.out().println("No active jobs");
            return;
        }
        for (JobInfo j : jobs) {
            s.out().println(formatJob(j));
        }
    }

    static String formatJob(JobInfo j) {
        String head = j.type() == JobType.STREAM ? "Streaming device " + j.id()
                : "Type " + j.type().qapiName() + ", device " + j.id();
        return head + ": Completed " + j.offset() + " of " + j.len() + " bytes, speed limit " + j.speed()
                + " bytes/s";
    }

    /**
     * QEMU's listing: drives (unless {@code -n}), then named nodes (with {@code -n}, or when a name was given: a node
     * name falls through to the node list). Entries are separated by an empty line, and a filtered entry is still
     * preceded by one unless it is the first of its full list.
     */
    static void block(HmpSession s, ParsedArgs a) {
        PrintStream out = s.out();
        String filter = a.has("device") ? a.getString("device") : null;
        boolean verbose = a.getFlag("verbose");
        boolean nodes = a.getFlag("nodes");
        if (!nodes) {
            List<BlockDevice> devices = s.graph().devices();
            for (int i = 0; i < devices.size(); i++) {
                BlockDevice d = devices.get(i);
                if (filter != null && !d.id().equals(filter)) {
                    continue;
                }
                if (i > 0) {
                    out.println();
                }
                printDevice(out, d, verbose);
            }
        }
        if (nodes || filter != null) {
            List<BlockNode> all = s.graph().nodes();
            for (int i = 0; i < all.size(); i++) {
                BlockNode n = all.get(i);
                if (filter != null && !n.name().equals(filter)) {
                    continue;
                }
                if (i > 0) {
                    out.println();
                }
                printNode(out, n.name(), n);
                if (verbose) {
                    ImageDetails.print(out, n);
                }
            }
        }
    }

    private static void printDevice(PrintStream out, BlockDevice d, boolean verbose) {
        BlockNode root = d.visibleRoot();
        if (root == null) {
            out.println(d.id() + ": [not inserted]");
            if (d.attachedTo() != null) {
                out.println("    Attached to:      " + d.attachedTo());
            }
            out.println("    Removable device: not locked, tray closed"); // no tray without a guest cd device
            return;
        }
        out.println(d.id() + " (" + root.name() + "): " + root.skipFilters().displayName() + " (" + root.driver()
                + (root.readOnly() ? ", read-only" : "") + ")");
        if (d.attachedTo() != null) {
            out.println("    Attached to:      " + d.attachedTo());
        }
        if (d.removable()) {
            out.println("    Removable device: not locked, tray closed"); // no tray without a guest cd device
        }
        out.println("    Cache mode:       " + d.cacheMode());
        BlockNode backing = root.skipFilters().backing();
        if (backing != null) {
            out.println("    Backing file:     " + backing.displayName() + " (chain depth: " + root.chainDepth() + ")");
        }
        printDetectZeroes(out, root);
        if (verbose) {
            ImageDetails.print(out, root);
        }
    }

    private static void printNode(PrintStream out, String name, BlockNode n) {
        out.println(name + ": " + n.displayName() + " (" + n.driver() + (n.readOnly() ? ", read-only" : "") + ")");
        out.println("    Cache mode:       writeback");
        if (n.role() == BlockNode.Role.FORMAT && n.backing() != null) {
            out.println("    Backing file:     " + n.backing().displayName() + " (chain depth: " + n.chainDepth()
                    + ")");
        }
        printDetectZeroes(out, n);
    }

    /** QEMU prints the detect-zeroes mode only when it is not off. */
    private static void printDetectZeroes(PrintStream out, BlockNode n) {
        String z = n.skipFilters().detectZeroes();
        if (!z.equals("off")) {
            out.println("    Detect zeroes:    " + z);
        }
    }
}
