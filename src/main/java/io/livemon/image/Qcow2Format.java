package io.livemon.image;

/**
 * The qcow2 on-disk constants (QEMU's docs/interop/qcow2.txt and block/qcow2.h): header magic and field flags, L1/L2
 * entry bits, header extension types and the limits QEMU 7.2 enforces when it opens an image.
 */
final class Qcow2Format {
    private Qcow2Format() {
    }

    static final int MAGIC = 0x514649fb;
    /** L1/L2 entry bit 63: the cluster's refcount is exactly one, so it may be written in place. */
    static final long OFLAG_COPIED = 1L << 63;
    /** L2 entry bit 62: a compressed cluster (its other bits hold the host offset and the sector count). */
    static final long OFLAG_COMPRESSED = 1L << 62;
    /** L2 entry bit 0 (version 3): the cluster reads as zeroes. */
    static final long OFLAG_ZERO = 1L;
    /** Host offset bits of a standard L1 or L2 entry. */
    static final long OFFSET_MASK = 0x00fffffffffffe00L;
    /** Host offset bits of a refcount table entry. */
    static final long REFT_OFFSET_MASK = 0xfffffffffffffe00L;
    /** QEMU's QCOW_MAX_L1_SIZE (bytes). */
    static final long MAX_L1_BYTES = 32L << 20;
    /** QEMU's QCOW_MAX_REFTABLE_SIZE (bytes). */
    static final long MAX_REFTABLE_BYTES = 8L << 20;
    static final int EXT_BACKING_FORMAT = 0xE2792ACA;
    static final int EXT_FEATURE_TABLE = 0x6803f857;
    static final long INCOMPAT_DIRTY = 1;
    static final long INCOMPAT_CORRUPT = 2;
    static final long INCOMPAT_DATA_FILE = 4;
    static final long INCOMPAT_COMPRESSION = 8;
    static final long INCOMPAT_EXTL2 = 16;
    static final long COMPAT_LAZY = 1;
    /** Header field offsets (bytes from the start of the file) that livemon rewrites on their own. */
    static final int HDR_SIZE = 24;
    static final int HDR_L1_SIZE = 36;
    static final int HDR_REFTABLE_OFFSET = 48;
    static final int HDR_INCOMPAT = 72;
    static final int HDR_AUTOCLEAR = 88;
}
