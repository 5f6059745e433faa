package io.livemon.block;

import java.util.ArrayList;
import java.util.List;

/**
 * One element of QEMU's {@code query-blockstats} (QAPI BlockStats, block/qapi.c bdrv_query_bds_stats): a drive or
 * a node, with the statistics livemon keeps and the same for the node's protocol child ({@code parent}) and, at
 * drive level, its backing node.
 *
 * <p>QEMU counts requests (bytes, operations, times) only for guest devices, and livemon emulates none: those
 * counters are zero, as QEMU's are for I/O from qemu-io or jobs. {@code wr_highest_offset} is kept per node for every
 * write, as QEMU keeps it.
 *
 * @param device          the drive's id (drive-level elements only), else null
 * @param nodeName        the node's name, null for an empty drive
 * @param driver          the node's driver ({@code file} nodes carry QEMU's driver-specific discard counters)
 * @param wrHighestOffset end in bytes of the highest write the node took since it was opened (guest offsets for a
 *                        format node, host-file offsets for a protocol node)
 * @param driveLevel      whether the counters belong to a drive (QEMU accounts invalid and failed requests there)
 * @param parent          the protocol child's statistics, or null
 * @param backing         the backing node's statistics (drive-level elements only), or null
 */
public record BlockStats(String device, String nodeName, String driver, long wrHighestOffset, boolean driveLevel,
                         BlockStats parent, BlockStats backing) {

    /**
     * query-blockstats: one element per drive ({@code queryNodes} false; implicit filters skipped, backing chain
     * included) or per node ({@code queryNodes} true; each node as it is, protocol child included, no backing), the
     * nodes in the order they were opened (the reverse of query-named-block-nodes, which QEMU builds by prepending).
     */
    static List<BlockStats> query(BlockGraph graph, boolean queryNodes) {
        List<BlockStats> l = new ArrayList<>();
        if (queryNodes) {
            List<BlockNode> nodes = graph.nodes();
            java.util.Collections.reverse(nodes);
            for (BlockNode n : nodes) {
                l.add(of(n, false));
            }
            return l;
        }
        for (BlockDevice d : graph.devices()) {
            BlockNode root = d.root();
            BlockStats s = root == null ? null : of(root.skipFilters(), true);
            l.add(s == null ? new BlockStats(d.id(), null, null, 0, true, null, null)
                    : new BlockStats(d.id(), s.nodeName, s.driver, s.wrHighestOffset, true, s.parent, s.backing));
        }
        return l;
    }

    private static BlockStats of(BlockNode n, boolean withBacking) {
        switch (n.role()) {
            case PROTOCOL:
                // a blkdebug node passes its requests on to the file node under it
                return new BlockStats(null, n.name(), n.driver(), n.image().highestHostWriteEnd(), false,
                        n.child() == null ? null : of(n.child(), false), null);
            case FILTER:
                // a job's filter node: livemon sends no request through it of its own (nothing counted)
                return new BlockStats(null, n.name(), n.driver(), 0, false, null, null);
            default:
                BlockStats parent = n.child() == null ? null : of(n.child(), false);
                BlockStats backing = withBacking && n.backing() != null ? of(n.backing(), true) : null;
                return new BlockStats(null, n.name(), n.driver(), n.image().highestWriteEnd(), false, parent,
                        backing);
        }
    }
}
