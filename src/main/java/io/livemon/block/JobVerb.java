package io.livemon.block;

import java.util.EnumSet;
import java.util.Set;

/** What a user can ask of a job, with QEMU's table of the states in which each request is accepted. */
enum JobVerb {
    CANCEL("cancel", EnumSet.of(JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY,
            JobStatus.STANDBY, JobStatus.WAITING, JobStatus.PENDING)),
    PAUSE("pause", EnumSet.of(JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY,
            JobStatus.STANDBY)),
    RESUME("resume", EnumSet.of(JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY,
            JobStatus.STANDBY)),
    SET_SPEED("set-speed", EnumSet.of(JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY,
            JobStatus.STANDBY)),
    COMPLETE("complete", EnumSet.of(JobStatus.READY, JobStatus.STANDBY)),
    FINALIZE("finalize", EnumSet.of(JobStatus.PENDING)),
    DISMISS("dismiss", EnumSet.of(JobStatus.CONCLUDED));

    private final String qapiName;
    private final Set<JobStatus> allowedIn;

    JobVerb(String qapiName, Set<JobStatus> allowedIn) {
        this.qapiName = qapiName;
        this.allowedIn = allowedIn;
    }

    public String qapiName() {
        return qapiName;
    }

    public boolean allowedIn(JobStatus status) {
        return allowedIn.contains(status);
    }
}
