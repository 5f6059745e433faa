package io.livemon.image;

/**
 * What {@code qemu-img info} says about one image file.
 *
 * @param clusterSize 0 for raw
 * @param compat "0.10" or "1.1" for qcow2, null for raw
 * @param refcountBits 0 for raw
 * @param diskSize bytes the file occupies on disk
 */
public record ImageInfo(String format, long virtualSize, long clusterSize, String compat, int refcountBits,
                        boolean lazyRefcounts, boolean corrupt, boolean dirty, long diskSize) {
}
