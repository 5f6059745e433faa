package io.livemon.block;

import io.livemon.image.BlockStatus;
import io.livemon.image.Image;
import java.io.IOException;

/**
 * HMP's synchronous {@code commit DEVICE|all}: writes the data the top image holds into its immediate backing file
 * (grown first to the top's virtual size when it is shorter), then empties the top. The chain and every backing
 * string stay as they are. Not the block-commit job.
 */
public final class DriveCommit {
    private static final int BUFFER = 1 << 20;

    private DriveCommit() {
    }

    /** Messages here carry no {@code Error: } prefix in HMP (QEMU 7.2). */
    public static void commit(BlockGraph graph, String deviceName) throws BlockException {
        if (deviceName.equals("all")) {
            // QEMU's blk_commit_all: every drive with a backing file, in order; the first failure ends it
            for (BlockDevice d : graph.devices()) {
                if (d.root() != null && d.root().skipFilters().backing() != null) {
                    if (busy(graph, d)) {
                        throw BlockErrors.commitBusy("all");
                    }
                    commitDevice(graph, d);
                }
            }
            return;
        }
        BlockDevice d = graph.device(deviceName);
        if (d == null || d.root() == null) {
            throw BlockErrors.deviceNotFound(deviceName);
        }
        // QEMU's bdrv_commit, past the implicit filters: no backing file (ENOTSUP) before busy (EBUSY)
        if (d.root().skipFilters().backing() == null) {
            throw BlockErrors.commitNotSupported(deviceName);
        }
        if (busy(graph, d)) {
            throw BlockErrors.commitBusy(deviceName);
        }
        if (d.root().skipFilters().image().isReadOnly()) {
            // QEMU's bdrv_commit refuses a read-only top before it touches the backing file (EPERM)
            throw BlockErrors.commitNotPermitted(deviceName);
        }
        commitDevice(graph, d);
    }

    /** A job holds the drive, or a job's filter stands at its root. */
    private static boolean busy(BlockGraph graph, BlockDevice d) {
        return graph.blocker(d.root()) != null || d.root().isFilter();
    }

    private static void commitDevice(BlockGraph graph, BlockDevice d) throws BlockException {
        BlockNode top = d.root().skipFilters();
        Image topImage = top.image();
        Image backing = top.backing().image();
        boolean wasReadOnly = backing.isReadOnly();
        try {
            if (wasReadOnly) {
                backing.setReadOnly(false);
            }
            // As QEMU's bdrv_commit (block/commit.c): a backing file shorter than the top grows first, or the data the
            // top holds past the backing file's end would be emptied from the top without landing anywhere.
            if (topImage.size() > backing.size()) {
                backing.resize(topImage.size());
            }
            long size = Math.min(topImage.size(), backing.size());
            byte[] buf = new byte[BUFFER];
            for (long off = 0; off < size; ) {
                BlockStatus st = topImage.blockStatus(off, Math.min(BUFFER, size - off));
                long n = Math.max(1, Math.min(st.length(), size - off));
                switch (st.kind()) {
                    case DATA -> {
                        topImage.read(off, buf, 0, (int) n);
                        backing.write(off, buf, 0, (int) n);
                    }
                    case ZERO -> backing.writeZeroes(off, n);
                    case UNALLOCATED -> { }
                }
                off += n;
            }
            backing.flush();
            topImage.makeEmpty();
            topImage.flush();
        } catch (IOException e) {
            throw BlockErrors.commitFailed(d.id(), e);
        } finally {
            if (wasReadOnly) {
                try {
                    backing.setReadOnly(true);
                } catch (IOException e) {
                    throw BlockErrors.commitFailed(d.id(), e);
                }
            }
        }
    }
}
