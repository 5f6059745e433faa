package io.livemon.image;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An LRU cache of one kind of qcow2 metadata table, one cluster each, keyed by host offset (QEMU's
 * block/qcow2-cache.c, one instance for L2 tables and one for refcount blocks). Write-through: whoever changes a
 * cached table writes the changed bytes to the file at once, so an evicted table is never dirty.
 *
 * <p>Concurrency: guarded by the owning layer's {@code meta} lock.
 */
final class Qcow2TableCache {
    private final Qcow2File file;
    private final long clusterSize;
    /** What the tables are, for error messages ("L2 table", "refcount block"). */
    private final String what;
    private final LinkedHashMap<Long, byte[]> tables;

    /** @param capacity tables kept (at least one) */
    Qcow2TableCache(Qcow2File file, long clusterSize, long capacity, String what) {
        this.file = file;
        this.clusterSize = clusterSize;
        this.what = what;
        int cap = (int) Math.max(1, Math.min(capacity, Integer.MAX_VALUE));
        this.tables = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, byte[]> eldest) {
                return size() > cap;
            }
        };
    }

    /**
     * The table at host offset {@code off}, read from the file when not cached. The returned array is the cached
     * one: a change to it must be written to the file by the caller.
     *
     * @throws ImageException when {@code off} is unaligned, in the header or past the end of the file (a corrupt
     *     pointer)
     */
    byte[] get(long off) throws IOException {
        byte[] b = tables.get(off);
        if (b != null) {
            return b;
        }
        long fileSize = file.size();
        if ((off & (clusterSize - 1)) != 0 || off <= 0 || off >= fileSize) {
            throw new ImageException("'" + file.filename + "': " + what + " offset 0x" + Long.toHexString(off)
                    + (off >= fileSize ? " is outside the file" : " is invalid (unaligned or in the header)"));
        }
        b = new byte[(int) clusterSize];
        file.read(b, 0, b.length, off);
        tables.put(off, b);
        return b;
    }

    /** Caches a table just written at {@code off}. */
    void put(long off, byte[] table) {
        tables.put(off, table);
    }

    void remove(long off) {
        tables.remove(off);
    }

    boolean contains(long off) {
        return tables.containsKey(off);
    }
}
