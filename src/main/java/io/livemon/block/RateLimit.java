package io.livemon.block;

/**
 * QEMU's slice-based rate limit: time is cut into 100 ms slices with a quota of speed/10 bytes each; work beyond
 * the quota is paid for by sleeping until the slice that covers it. One unit of work is always allowed at once, and
 * the long-run average is the speed. Not thread-safe: the owning job guards it with its own lock.
 */
final class RateLimit {
    static final long SLICE_NS = 100_000_000L;

    /** Bytes per second, 0 = unlimited. */
    private long speed;
    /** Start of the current slice (System.nanoTime()). */
    private long sliceStart;
    /** Bytes charged to the current slice. */
    private long dispatched;

    void setSpeed(long bytesPerSecond) {
        this.speed = bytesPerSecond;
    }

    long speed() {
        return speed;
    }

    /** Charges {@code bytes} and returns how long to sleep (ns) before the next unit of work. */
    long charge(long bytes, long nowNs) {
        if (speed <= 0) {
            return 0;
        }
        long quota = Math.max(1, speed / 10);
        if (nowNs - sliceStart >= SLICE_NS && dispatched <= quota) {
            sliceStart = nowNs;
            dispatched = 0;
        }
        dispatched += bytes;
        if (dispatched < quota) {
            return 0;
        }
        long wakeAt = sliceStart + (long) ((double) dispatched / quota * SLICE_NS);
        long delay = wakeAt - nowNs;
        // The next slice starts when the debt is paid.
        sliceStart = wakeAt;
        dispatched = 0;
        return Math.max(0, delay);
    }
}
