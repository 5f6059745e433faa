package io.livemon.block;

/**
 * QEMU's slice-based rate limit (include/qemu/ratelimit.h): a slice of 100 ms carries a quota of speed/10 bytes;
 * work beyond the quota extends the slice, by as many slices as the work covers, and the delay returned is the time
 * to its end. A slice whose end has passed starts a new one with nothing charged, so the time since the slice began
 * counts as credit: after a raised limit the debt of the old one may already be paid. Not thread-safe: the owning
 * job guards it with its own lock.
 */
final class RateLimit {
    static final long SLICE_NS = 100_000_000L;

    /** Bytes per second, 0 = unlimited. */
    private long speed;
    /** Bytes a slice may carry (at least 1), 0 = unlimited. */
    private long quota;
    /** Start and (possibly extended) end of the current slice, in System.nanoTime() terms. */
    private long sliceStart;
    private long sliceEnd;
    /** Bytes charged since the slice began. */
    private long dispatched;

    /** A new limit applies to the current slice as it is (ratelimit_set_speed). */
    void setSpeed(long bytesPerSecond) {
        this.speed = bytesPerSecond;
        this.quota = bytesPerSecond <= 0 ? 0 : Math.max(1, (long) ((double) bytesPerSecond * SLICE_NS / 1e9));
    }

    long speed() {
        return speed;
    }

    /**
     * Charges {@code bytes} and returns how long to sleep (ns, 0 when the slice has room or its end has passed)
     * before the next unit of work (ratelimit_calculate_delay).
     */
    long charge(long bytes, long nowNs) {
        if (quota == 0) {
            return 0;
        }
        if (sliceEnd - nowNs < 0) {
            sliceStart = nowNs;
            sliceEnd = nowNs + SLICE_NS;
            dispatched = 0;
        }
        dispatched += bytes;
        if (dispatched < quota) {
            return 0;
        }
        sliceEnd = sliceStart + (long) ((double) dispatched / quota * SLICE_NS);
        return Math.max(0, sliceEnd - nowNs);
    }
}
