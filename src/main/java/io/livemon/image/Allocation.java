package io.livemon.image;

/** Whether a run of bytes is allocated somewhere in a part of a backing chain, and how long that run is. */
public record Allocation(boolean allocated, long length) {
}
