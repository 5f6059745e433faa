package io.livemon.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.block.JobInfo;
import io.livemon.block.JobStatus;
import io.livemon.block.JobType;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The status line tells the truth about a rate-limited job that publishes its progress in chunks, as livemon's jobs
 * do (512 KiB, then a sleep), sampled by a redraw that does not keep the job's beat: the rate stays within 10% of the limit and never above it, the time left within 20% of the time actually left
 * once a fifth of the job is done, and a paused job shows neither.
 */
class JobProgressLineTest {
    private static final long MIB = 1 << 20;
    private static final Pattern RATE = Pattern.compile(" ([0-9.]+) MiB/s eta (\\d\\d):(\\d\\d) ");

    private static JobInfo job(long offset, long len, long speed, boolean paused) {
        return new JobInfo("virtio0", JobType.STREAM, paused ? JobStatus.PAUSED : JobStatus.RUNNING, offset, len,
                speed, !paused, paused, false, "ok", true, true, null);
    }

    @Test
    void aChunkedTwoMibPerSecondJobShowsItsRateAndTimeLeft() {
        long speed = 2 * MIB;
        long len = 40 * MIB; // 20 s at the limit
        long chunk = 512 << 10; // livemon's throttled stream copies and publishes 512 KiB, then sleeps 250 ms
        JobProgressLine line = new JobProgressLine();
        int checked = 0;
        java.util.Random jitter = new java.util.Random(1);
        for (long t = 0; t < 20_000; t += 250) { // the status line redraws every 250 ms, a little off the job's beat
            long sample = t + jitter.nextInt(200);
            long offset = Math.min(len, (sample / 250 + 1) * chunk);
            String s = line.render(job(offset, len, speed, false), sample * 1_000_000L);
            Matcher m = RATE.matcher(s);
            long settle = JobProgressLine.SETTLE_NS / 1_000_000;
            if (t < settle - 250) {
                assertThat(s).as("t=%d", t).contains("eta --:--").doesNotContain("MiB/s");
                continue;
            }
            if (t < settle + 250) {
                continue; // settling, depending on where the samples fell
            }
            assertThat(m.find()).as("t=%d: %s", t, s).isTrue();
            double rate = Double.parseDouble(m.group(1)) * MIB;
            assertThat(rate).as("t=%d: %s", t, s).isLessThanOrEqualTo(speed);
            if (t >= 4000) { // a fifth of the job
                assertThat(rate).as("t=%d: %s", t, s).isGreaterThanOrEqualTo(0.9 * speed);
                double eta = Integer.parseInt(m.group(2)) * 60 + Integer.parseInt(m.group(3));
                double left = (20_000 - sample) / 1000.0;
                assertThat(Math.abs(eta - left)).as("t=%d: %s (left %.1f s)", t, s, left)
                        .isLessThanOrEqualTo(Math.max(0.2 * left, 1.0));
                checked++;
            }
        }
        assertThat(checked).isGreaterThan(50);
    }

    @Test
    void aPausedJobShowsNoRateAndNoTimeLeft() {
        JobProgressLine line = new JobProgressLine();
        for (long t = 0; t < 5000; t += 250) {
            line.render(job(t * 1000, 64 * MIB, 0, false), t * 1_000_000L);
        }
        String s = line.render(job(5_000_000, 64 * MIB, 0, true), 5_000_000_000L);
        assertThat(s).endsWith("paused").doesNotContain("eta").doesNotContain("/s");
        // after a resume the rate settles again from new samples
        String resumed = line.render(job(5_000_000, 64 * MIB, 0, false), 5_250_000_000L);
        assertThat(resumed).contains("eta --:--");
    }
}
