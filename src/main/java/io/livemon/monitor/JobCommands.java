package io.livemon.monitor;

import io.livemon.block.BlockException;

/** Handlers of the {@code block_job_*} commands: each names a job by its id. */
final class JobCommands {
    private JobCommands() {
    }

    static void setSpeed(HmpSession s, ParsedArgs a) throws BlockException {
        s.graph().job(a.getString("device")).setSpeed(a.getLong("speed"));
    }

    static void cancel(HmpSession s, ParsedArgs a) throws BlockException {
        s.graph().job(a.getString("device")).cancel(a.getFlag("force"));
    }

    static void complete(HmpSession s, ParsedArgs a) throws BlockException {
        s.graph().job(a.getString("device")).complete();
    }

    static void pause(HmpSession s, ParsedArgs a) throws BlockException {
        s.graph().job(a.getString("device")).pause();
    }

    static void resume(HmpSession s, ParsedArgs a) throws BlockException {
        s.graph().job(a.getString("device")).resume();
    }
}
