package io.livemon.image;

import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.List;

/** Shared/exclusive locks over byte ranges [start, end) of one image. */
final class RangeLock {
    /** One held range. */
    static final class Range {
        final long start;
        final long end;
        final boolean exclusive;

        Range(long start, long end, boolean exclusive) {
            this.start = start;
            this.end = end;
            this.exclusive = exclusive;
        }

        boolean conflicts(long s, long e, boolean excl) {
            return s < end && start < e && (excl || exclusive);
        }
    }

    private final Object monitor = new Object(); // guards 'held' (the list of ranges currently locked)
    private final List<Range> held = new ArrayList<>();

    Range lock(long start, long end, boolean exclusive) throws InterruptedIOException {
        synchronized (monitor) {
            while (true) {
                boolean conflict = false;
                for (Range r : held) {
                    if (r.conflicts(start, end, exclusive)) {
                        conflict = true;
                        break;
                    }
                }
                if (!conflict) {
                    Range r = new Range(start, end, exclusive);
                    held.add(r);
                    return r;
                }
                try {
                    monitor.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException("interrupted while waiting for a range lock");
                }
            }
        }
    }

    void unlock(Range r) {
        synchronized (monitor) {
            held.remove(r);
            monitor.notifyAll();
        }
    }
}
