package io.livemon.block;

/** What a job needs from the block layer around it. */
interface JobContext {
    EventBus events();

    /** The job reached {@code null}: forget it and release its nodes. */
    void jobEnded(Job job);

    /**
     * The job's clean step gave up its nodes (see {@link Job#releasesNodesWhenClean()}): other jobs may start on them
     * while this one stays listed, concluded, until it is dismissed.
     */
    void jobReleasedNodes(Job job);
}
