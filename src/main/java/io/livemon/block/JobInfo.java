package io.livemon.block;

/** A snapshot of one job's state, as the query commands report it. */
public record JobInfo(String id, JobType type, JobStatus status, long offset, long len, long speed, boolean busy,
                      boolean paused, boolean ready, String ioStatus, boolean autoFinalize, boolean autoDismiss,
                      String error) {
}
