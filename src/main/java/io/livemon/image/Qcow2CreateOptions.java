package io.livemon.image;

/**
 * Options of {@code qemu-img create -f qcow2}. Null / 0 fields mean the qemu-img default.
 *
 * @param clusterSize    cluster size in bytes (0: 65536)
 * @param compat         "1.1" or "0.10" (null: "1.1", not printed on the Formatting line)
 * @param refcountBits   refcount width (0: 16)
 * @param lazyRefcounts  lazy_refcounts=on
 * @param backingFile    backing file string stored in the header, or null
 * @param backingFormat  backing format stored in the header extension, or null (probed when a backing file is given)
 */
public record Qcow2CreateOptions(long clusterSize, String compat, int refcountBits, boolean lazyRefcounts,
                                 String backingFile, String backingFormat) {

    public static Qcow2CreateOptions defaults() {
        return new Qcow2CreateOptions(0, null, 0, false, null, null);
    }

    public static Qcow2CreateOptions withBacking(String backingFile, String backingFormat) {
        return new Qcow2CreateOptions(0, null, 0, false, backingFile, backingFormat);
    }

    public Qcow2CreateOptions withClusterSize(long cs) {
        return new Qcow2CreateOptions(cs, compat, refcountBits, lazyRefcounts, backingFile, backingFormat);
    }

    public Qcow2CreateOptions withCompat(String c) {
        return new Qcow2CreateOptions(clusterSize, c, refcountBits, lazyRefcounts, backingFile, backingFormat);
    }

    public Qcow2CreateOptions withRefcountBits(int bits) {
        return new Qcow2CreateOptions(clusterSize, compat, bits, lazyRefcounts, backingFile, backingFormat);
    }

    public Qcow2CreateOptions withLazyRefcounts(boolean lazy) {
        return new Qcow2CreateOptions(clusterSize, compat, refcountBits, lazy, backingFile, backingFormat);
    }

    public Qcow2CreateOptions withBackingFile(String file, String fmt) {
        return new Qcow2CreateOptions(clusterSize, compat, refcountBits, lazyRefcounts, file, fmt);
    }

    long effectiveClusterSize() {
        return clusterSize == 0 ? 65536 : clusterSize;
    }

    String effectiveCompat() {
        return compat == null ? "1.1" : compat;
    }

    int effectiveRefcountBits() {
        return refcountBits == 0 ? 16 : refcountBits;
    }
}
