package io.livemon.block;

/** The kinds of block job, with the names QEMU reports and the words {@code info block-jobs} uses. */
public enum JobType {
    STREAM("stream"), COMMIT("commit"), MIRROR("mirror"), BACKUP("backup");

    private final String qapiName;

    JobType(String qapiName) {
        this.qapiName = qapiName;
    }

    public String qapiName() {
        return qapiName;
    }
}
