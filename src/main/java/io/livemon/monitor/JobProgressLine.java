package io.livemon.monitor;

import io.livemon.block.JobInfo;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Renders one job's progress for the status line: a bar, percent, rate and time left. The rate is smoothed over
 * successive samples of the same job.
 */
final class JobProgressLine {
    private static final int BAR = 24;

    /** Last sample per job id: offset and time; touched only by the status-line thread. */
    private final Map<String, long[]> samples = new HashMap<>();
    private final Map<String, Double> rates = new HashMap<>();

    String render(JobInfo j, long nowNs) {
        long[] prev = samples.get(j.id());
        double rate = rates.getOrDefault(j.id(), 0.0);
        if (prev != null && nowNs > prev[1]) {
            double instant = (j.offset() - prev[0]) * 1e9 / (nowNs - prev[1]);
            rate = rate == 0 ? instant : 0.7 * rate + 0.3 * instant;
        }
        samples.put(j.id(), new long[] {j.offset(), nowNs});
        rates.put(j.id(), rate);
        double frac = j.len() == 0 ? 0 : Math.min(1.0, (double) j.offset() / j.len());
        int filled = (int) Math.round(frac * BAR);
        String bar = "#".repeat(filled) + "-".repeat(BAR - filled);
        String eta = rate > 0 ? formatSeconds((j.len() - j.offset()) / rate) : "--:--";
        return String.format(Locale.ROOT, "%s %s [%s] %5.1f%% %s/s eta %s %s", j.type().qapiName(), j.id(), bar,
                frac * 100, Sizes.human((long) Math.max(0, rate)), eta, j.status().qapiName());
    }

    void forgetExcept(List<JobInfo> jobs) {
        var ids = jobs.stream().map(JobInfo::id).collect(Collectors.toSet());
        samples.keySet().retainAll(ids);
        rates.keySet().retainAll(ids);
    }

    private static String formatSeconds(double s) {
        long t = Math.round(s);
        return String.format(Locale.ROOT, "%02d:%02d", t / 60, t % 60);
    }
}
