package io.livemon.block;

import java.util.EnumSet;
import java.util.Locale;
import java.util.Set;

/** The states of a job, as QEMU's {@code JobStatus}, with the transitions QEMU allows between them. */
public enum JobStatus {
    UNDEFINED, CREATED, RUNNING, PAUSED, READY, STANDBY, WAITING, PENDING, ABORTING, CONCLUDED, NULL;

    /** The name on the wire ({@code "running"}). */
    public String qapiName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** QEMU's transition table: the states each state may move to. */
    private Set<JobStatus> successors() {
        return switch (this) {
            case UNDEFINED -> EnumSet.of(CREATED);
            case CREATED -> EnumSet.of(RUNNING, ABORTING, NULL);
            case RUNNING -> EnumSet.of(PAUSED, READY, WAITING, ABORTING);
            case PAUSED -> EnumSet.of(RUNNING);
            case READY -> EnumSet.of(STANDBY, WAITING, ABORTING);
            case STANDBY -> EnumSet.of(READY);
            case WAITING -> EnumSet.of(PENDING, ABORTING);
            case PENDING -> EnumSet.of(CONCLUDED, ABORTING);
            case ABORTING -> EnumSet.of(ABORTING, CONCLUDED);
            case CONCLUDED -> EnumSet.of(NULL);
            case NULL -> EnumSet.noneOf(JobStatus.class);
        };
    }

    public boolean canMoveTo(JobStatus next) {
        return successors().contains(next);
    }
}
