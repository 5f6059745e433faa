package io.livemon.block;

/** What a job needs from the block layer around it. */
interface JobContext {
    EventBus events();

    /** The job reached {@code null}: forget it and release its nodes. */
    void jobEnded(Job job);
}
