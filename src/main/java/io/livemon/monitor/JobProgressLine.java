package io.livemon.monitor;

import io.livemon.block.JobInfo;
import io.livemon.block.JobStatus;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Renders one job's progress for the status line: a bar, percent, rate and time left.
 *
 * <p>Jobs publish progress in steps (a rate-limited copy moves its offset by a whole chunk, then sleeps), so an
 * instantaneous rate lies in both directions. The rate here is the progress over a sliding window of
 * {@link #WINDOW_NS}, shown only once the window spans {@link #SETTLE_NS} of running time, never above the job's
 * speed limit, and the time left is derived from it; a job that is not running (paused, ready, waiting) shows no
 * rate and no time left, and its window starts again when it runs.
 */
final class JobProgressLine {
    private static final int BAR = 24;
    /** Progress is averaged over this much of the recent past (ns). */
    static final long WINDOW_NS = 10_000_000_000L;
    /** No rate is shown before the window spans this much (ns). */
    static final long SETTLE_NS = 3_000_000_000L;

    /** Recent samples per job id, oldest first: {offset, time ns}. Touched only by the status-line thread. */
    private final Map<String, Deque<long[]>> samples = new HashMap<>();

    String render(JobInfo j, long nowNs) {
        Deque<long[]> w = samples.computeIfAbsent(j.id(), k -> new ArrayDeque<>());
        boolean running = j.status() == JobStatus.RUNNING && !j.paused();
        if (!running) {
            w.clear();
        } else {
            w.addLast(new long[] {j.offset(), nowNs});
            while (w.size() > 2 && nowNs - w.peekFirst()[1] > WINDOW_NS) {
                w.removeFirst();
            }
        }
        double rate = -1;
        if (running && w.size() >= 2 && nowNs - w.peekFirst()[1] >= SETTLE_NS) {
            long[] first = w.peekFirst();
            rate = Math.max(0, (j.offset() - first[0]) * 1e9 / (nowNs - first[1]));
            if (j.speed() > 0) {
                rate = Math.min(rate, j.speed());
            }
        }
        double frac = j.len() == 0 ? 0 : Math.min(1.0, (double) j.offset() / j.len());
        int filled = (int) Math.round(frac * BAR);
        String bar = "#".repeat(filled) + "-".repeat(BAR - filled);
        String rateText = rate < 0 ? "--" : Sizes.human((long) rate) + "/s";
        String eta = rate > 0 ? "eta " + formatSeconds(Math.max(0, j.len() - j.offset()) / rate) : "eta --:--";
        String state = j.paused() ? "paused" : j.status().qapiName();
        return String.format(Locale.ROOT, "%s %s [%s] %5.1f%% %s %s %s", j.type().qapiName(), j.id(), bar,
                frac * 100, rateText, running ? eta : "", state).replace("  ", " ");
    }

    void forgetExcept(List<JobInfo> jobs) {
        var ids = jobs.stream().map(JobInfo::id).collect(Collectors.toSet());
        samples.keySet().retainAll(ids);
    }

    private static String formatSeconds(double s) {
        long t = Math.round(s);
        return String.format(Locale.ROOT, "%02d:%02d", t / 60, t % 60);
    }
}
