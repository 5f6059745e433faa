package io.livemon.block;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A background block job: QEMU's job life cycle (states, verbs, pause, cancel, rate limit, finalize, dismiss) around
 * a small work loop that each job type supplies in {@link #run()}. Graph changes happen in {@link #prepare()} (on
 * success, at finalization) or {@link #abort()}, and {@link #clean()} always runs last.
 *
 * <p>The job runs on its own thread. Monitor threads call the verb methods; they never wait for the work loop.
 */
public abstract class Job {
    private static final Logger LOG = LoggerFactory.getLogger(Job.class);

    /** Thrown inside the work loop when the job must stop because it was cancelled. */
    protected static final class CancelledException extends Exception {
        CancelledException() {
            super("Operation canceled", null, false, false);
        }
    }

    /**
     * The filter node the job put above the node it works on (the device's root while it runs), or null; set before
     * the job's thread starts (see {@link BlockGraph#startJobBehindFilter}) and removed by the job's clean step.
     */
    volatile BlockNode filter;

    private final String id;
    private final JobType type;
    private final boolean autoFinalize;
    private final boolean autoDismiss;
    /** on-error (stream, commit), or on-source-error (mirror, backup): the policy for a failed read. */
    private final OnErrorPolicy onError;
    /** on-target-error (mirror, backup): the policy for a failed write; stream and commit use {@link #onError}. */
    private final OnErrorPolicy onTargetError;
    protected final JobContext context;

    /**
     * Serialises state transitions with the publication of their events, so that events leave in the order the
     * states changed even when a monitor thread (resume) and the job thread both move the job. Taken before
     * {@link #lock}, never while holding it.
     */
    private final Object transitionMonitor = new Object();

    /** Guards every mutable field below and is the monitor of {@link #changed}. */
    private final ReentrantLock lock = new ReentrantLock();
    /** Signalled whenever a field below changes (verb applied, sleep interrupted, state moved). */
    private final Condition changed = lock.newCondition();

    private JobStatus status = JobStatus.UNDEFINED;
    private final RateLimit rateLimit = new RateLimit();
    private long offset;
    private long len;
    /** Pause requests not yet matched by a resume (user pause counts once, as QEMU's user_paused). */
    private int pauseCount;
    private boolean userPaused;
    /** Counts the job thread's pauses (incremented each time it starts waiting), so a resume knows its pause. */
    private long pauseEpoch;
    private boolean cancelled;
    private boolean forceCancel;
    /** True while the work loop is not sleeping (QMP {@code busy}). */
    private boolean busy = true;
    /** Set by complete(): the job should leave its ready phase and finish. */
    private boolean completeRequested;
    /** True while the work loop sleeps for its rate limit (the only sleep a drain cuts short). */
    private boolean rateSleeping;
    /**
     * Rate-limit sleeps that drains have cut short and the work loop has not yet consumed: each ends one sleep, so
     * a throttled job copies one more step per drain, as QEMU 7.2's job does when a drain pauses and resumes it.
     */
    private int drainKicks;
    /**
     * Counts what ends a rate-limit sleep under way at once, as QEMU enters the job's coroutine at once: a
     * block-job-set-speed that raised or removed the limit, and a pause (job_pause_locked enters the job, which then
     * stops at its pause point; a resume just after does not put it back to sleep).
     */
    private long sleepKicks;
    /** Set by finalize(): a pending job with auto-finalize off may proceed. */
    private boolean finalizeRequested;
    private boolean dismissRequested;
    /** Set when an I/O error stopped the job under on-error=stop; {@code io-status: failed}. */
    private boolean ioFailed;
    /** The job thread while it is in its last step (see {@link #status}); null otherwise. */
    private volatile Thread ending;
    /** With {@link #ioFailed}: the stop was for ENOSPC (io-status {@code nospace}). Guarded by {@link #lock}. */
    private boolean ioNoSpace;
    /** The error the job ended with ("Operation canceled", "Input/output error"), or null. */
    private String error;

    /** A job with one on-error policy for reads and writes alike (stream, commit). */
    protected Job(JobContext context, String id, JobType type, long speed, OnErrorPolicy onError,
                  boolean autoFinalize, boolean autoDismiss) {
        this(context, id, type, speed, onError, onError, autoFinalize, autoDismiss);
    }

    /**
     * A job whose failed reads follow {@code onSourceError} and failed writes {@code onTargetError}, as QEMU's mirror
     * and backup choose (block/mirror.c mirror_error_action, block/backup.c backup_error_action).
     */
    protected Job(JobContext context, String id, JobType type, long speed, OnErrorPolicy onSourceError,
                  OnErrorPolicy onTargetError, boolean autoFinalize, boolean autoDismiss) {
        this.context = context;
        this.id = id;
        this.type = type;
        this.onError = onSourceError;
        this.onTargetError = onTargetError;
        this.autoFinalize = autoFinalize;
        this.autoDismiss = autoDismiss;
        this.rateLimit.setSpeed(speed);
    }

    // ---------------------------------------------------------------- identity and progress

    public String id() {
        return id;
    }

    public JobType type() {
        return type;
    }

    public boolean autoFinalize() {
        return autoFinalize;
    }

    public boolean autoDismiss() {
        return autoDismiss;
    }

    /** A consistent copy of what {@code query-block-jobs}/{@code query-jobs}/{@code info block-jobs} show. */
    public JobInfo info() {
        lock.lock();
        try {
            // QEMU's busy: the job's coroutine is working; never while it waits in pending/concluded
            boolean working = busy && status != JobStatus.PENDING && status != JobStatus.CONCLUDED
                    && status != JobStatus.NULL;
            return new JobInfo(id, type, status, offset, len, rateLimit.speed(), working,
                    status == JobStatus.PAUSED || status == JobStatus.STANDBY,
                    status == JobStatus.READY || status == JobStatus.STANDBY,
                    !ioFailed ? "ok" : ioNoSpace ? "nospace" : "failed", autoFinalize, autoDismiss, error);
        } finally {
            lock.unlock();
        }
    }

    /**
     * The job's status. While the job thread is in its last step (event, concluded, null), another thread waits (at
     * most a second) until the step's events are out, so that a status seen implies its events were delivered.
     */
    public JobStatus status() {
        Thread t = ending;
        if (t != null && t != Thread.currentThread()) {
            long deadline = System.nanoTime() + 1_000_000_000L;
            while (ending != null && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
        }
        lock.lock();
        try {
            return status;
        } finally {
            lock.unlock();
        }
    }

    protected void setLen(long len) {
        lock.lock();
        try {
            this.len = len;
        } finally {
            lock.unlock();
        }
    }

    protected void addLen(long delta) {
        lock.lock();
        try {
            this.len += delta;
        } finally {
            lock.unlock();
        }
    }

    protected void setOffset(long offset) {
        lock.lock();
        try {
            this.offset = offset;
        } finally {
            lock.unlock();
        }
    }

    protected void addOffset(long delta) {
        lock.lock();
        try {
            this.offset += delta;
        } finally {
            lock.unlock();
        }
    }

    // ---------------------------------------------------------------- verbs (monitor threads)

    private void checkVerb(JobVerb verb) throws BlockException {
        if (!verb.allowedIn(status)) {
            throw BlockErrors.verbNotAllowed(id, status, verb);
        }
    }

    public void setSpeed(long speed) throws BlockException {
        if (speed < 0) {
            throw BlockErrors.negativeSpeed();
        }
        lock.lock();
        try {
            checkVerb(JobVerb.SET_SPEED);
            long old = rateLimit.speed();
            rateLimit.setSpeed(speed);
            // blockjob.c block_job_set_speed_locked: only a higher limit, or none, ends a rate-limit sleep early; a
            // lower or equal one applies from the next step on
            if (speed == 0 || speed > old) {
                sleepKicks++;
                changed.signalAll();
            }
        } finally {
            lock.unlock();
        }
    }

    public void pause() throws BlockException {
        lock.lock();
        try {
            checkVerb(JobVerb.PAUSE);
            if (userPaused) {
                throw BlockErrors.alreadyPaused();
            }
            userPaused = true;
            pauseCount++;
            sleepKicks++;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Resumes a user-paused job. As in QEMU, where the job runs again before the command returns, a job waiting in
     * PAUSED/STANDBY is moved back to RUNNING/READY here (its thread then finds the state already set).
     */
    public void resume() throws BlockException {
        JobStatus wakeTo = null;
        long epoch;
        lock.lock();
        try {
            epoch = pauseEpoch;
            if (!userPaused) {
                throw BlockErrors.notPaused();
            }
            checkVerb(JobVerb.RESUME);
            userPaused = false;
            ioFailed = false;
            pauseCount--;
            if (pauseCount == 0 && status == JobStatus.PAUSED) {
                wakeTo = JobStatus.RUNNING;
            } else if (pauseCount == 0 && status == JobStatus.STANDBY) {
                wakeTo = JobStatus.READY;
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        if (wakeTo != null) {
            synchronized (transitionMonitor) {
                // The job thread may have woken and moved on already, or even paused again (a retried request
                // failing at once): only a job still waiting in the pause this resume ended is moved.
                boolean stillWaiting;
                lock.lock();
                try {
                    stillWaiting = pauseEpoch == epoch && pauseCount == 0
                            && status == (wakeTo == JobStatus.RUNNING ? JobStatus.PAUSED : JobStatus.STANDBY);
                } finally {
                    lock.unlock();
                }
                if (stillWaiting) {
                    transition(wakeTo);
                }
            }
        }
    }

    /**
     * Cancels the job. A paused job needs {@code force} (QEMU's block-job-cancel); {@code job-cancel} always forces.
     * A ready job cancelled without force completes without its switch-over (see {@link #cancelledWhileReady()}).
     */
    public void cancel(boolean force) throws BlockException {
        lock.lock();
        try {
            checkVerb(JobVerb.CANCEL);
            if (!force && userPaused) {
                throw BlockErrors.jobPaused(id);
            }
            if (status == JobStatus.CONCLUDED) {
                return;
            }
            cancelled = true;
            forceCancel = force;
            if (force && userPaused) {
                userPaused = false;
                pauseCount--;
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    public void complete() throws BlockException {
        lock.lock();
        try {
            checkVerb(JobVerb.COMPLETE);
            completeRequested = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    public void finalizeJob() throws BlockException {
        lock.lock();
        try {
            checkVerb(JobVerb.FINALIZE);
            finalizeRequested = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    public void dismiss() throws BlockException {
        lock.lock();
        try {
            checkVerb(JobVerb.DISMISS);
            dismissRequested = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        transition(JobStatus.NULL);
        context.jobEnded(this);
    }

    // ---------------------------------------------------------------- the job thread

    /** A job refused right after creation (QEMU's early fail): {@code created}, then {@code null}. */
    final void discardCreated() {
        transition(JobStatus.CREATED);
        transition(JobStatus.NULL);
    }

    /** Creates the job (emits {@code created}) and starts its thread (emits {@code running}). */
    final void start() {
        transition(JobStatus.CREATED);
        transition(JobStatus.RUNNING);
        Thread t = new Thread(this::lifeCycle, "job-" + id);
        t.setDaemon(true);
        t.start();
    }

    private void lifeCycle() {
        String failure = null;
        try {
            run();
        } catch (CancelledException e) {
            // handled below
        } catch (Exception | Error e) {
            LOG.warn("job {} failed", id, e);
            failure = messageOf(e);
        }
        boolean wasCancelled;
        lock.lock();
        try {
            wasCancelled = cancelled && (forceCancel || !wasReady);
        } finally {
            lock.unlock();
        }
        if (failure == null && !wasCancelled) {
            transition(JobStatus.WAITING);
            transition(JobStatus.PENDING);
            if (!autoFinalize) {
                context.events().publish(Event.now("BLOCK_JOB_PENDING", orderedMap("type", type.qapiName(), "id", id)));
                if (!awaitFinalizeOrCancel()) {
                    wasCancelled = true;
                }
            }
            if (!wasCancelled) {
                try {
                    prepare();
                } catch (Exception e) {
                    LOG.warn("job {} failed to finish", id, e);
                    failure = messageOf(e);
                }
            }
        }
        if (wasCancelled || failure != null) {
            // job.c job_update_rc: the error is the job's before it is announced as aborting (query-jobs shows it)
            lock.lock();
            try {
                error = wasCancelled ? "Operation canceled" : failure;
            } finally {
                lock.unlock();
            }
            transition(JobStatus.ABORTING);
            try {
                abort();
            } catch (Exception e) {
                LOG.warn("job {} abort step failed", id, e);
            }
        }
        try {
            clean();
        } catch (Exception e) {
            LOG.warn("job {} clean step failed", id, e);
        }
        if (releasesNodesWhenClean(wasCancelled || failure != null)) {
            context.jobReleasedNodes(this);
        }
        lock.lock();
        try {
            error = wasCancelled ? "Operation canceled" : failure;
        } finally {
            lock.unlock();
        }
        JobInfo end = info();
        Map<String, Object> data = orderedMap("device", id, "len", end.len(), "offset", end.offset(),
                "speed", end.speed(), "type", type.qapiName());
        boolean cancelledEnd = wasCancelled;
        String failed = failure;
        // One step, as QEMU's main loop does it: the last event, concluded and (auto-dismiss) gone from the job
        // list before any client can read the event. Lock order: transitionMonitor, then the bus, then the graph.
        ending = Thread.currentThread();
        try {
            synchronized (transitionMonitor) {
                context.events().atomically(() -> {
                    if (cancelledEnd) {
                        context.events().publish(Event.now("BLOCK_JOB_CANCELLED", data));
                    } else {
                        if (failed != null) {
                            data.put("error", failed);
                        }
                        context.events().publish(Event.now("BLOCK_JOB_COMPLETED", data));
                    }
                    transition(JobStatus.CONCLUDED);
                    if (autoDismiss) {
                        transition(JobStatus.NULL);
                        context.jobEnded(this);
                    }
                });
            }
        } finally {
            ending = null;
        }
    }

    /** Set once the job went READY: a non-forced cancel then means "complete without switching over". */
    private boolean wasReady;

    /** True when a ready job was cancelled without force (mirror: finish, keep the source). */
    protected final boolean cancelledWhileReady() {
        lock.lock();
        try {
            return cancelled && !forceCancel && wasReady;
        } finally {
            lock.unlock();
        }
    }

    private boolean awaitFinalizeOrCancel() {
        lock.lock();
        try {
            while (!finalizeRequested && !cancelled) {
                changed.awaitUninterruptibly();
            }
            return finalizeRequested && !cancelled;
        } finally {
            lock.unlock();
        }
    }

    private static String messageOf(Throwable e) {
        String m = e.getMessage();
        return m == null || m.isEmpty() ? e.getClass().getSimpleName() : m;
    }

    /** Moves to {@code next}, failing loudly on a transition QEMU's table does not allow, and emits the event. */
    protected final void transition(JobStatus next) {
        synchronized (transitionMonitor) {
            lock.lock();
            try {
                if (status == next && next != JobStatus.ABORTING) {
                    return;
                }
                if (!status.canMoveTo(next)) {
                    throw new IllegalStateException("job " + id + ": illegal transition " + status + " -> " + next);
                }
                status = next;
                changed.signalAll();
            } finally {
                lock.unlock();
            }
            context.events().publish(Event.now("JOB_STATUS_CHANGE", orderedMap("status", next.qapiName(),
                    "id", id)));
        }
    }

    /** Enters READY (mirror, active commit) and emits BLOCK_JOB_READY. */
    protected final void becomeReady() {
        lock.lock();
        try {
            wasReady = true;
        } finally {
            lock.unlock();
        }
        transition(JobStatus.READY);
        JobInfo i = info();
        context.events().publish(Event.now("BLOCK_JOB_READY", orderedMap("device", id, "len", i.len(),
                "offset", i.offset(), "speed", i.speed(), "type", type.qapiName())));
    }

    /** Whether complete() was called (the ready phase should end). */
    protected final boolean completeRequested() {
        lock.lock();
        try {
            return completeRequested;
        } finally {
            lock.unlock();
        }
    }

    /**
     * A pause point: returns at once unless the job is paused (then waits in PAUSED/STANDBY until resumed) and
     * throws when the job was cancelled. Ready jobs cancelled without force return normally: the loop checks
     * {@link #cancelledWhileReady()}.
     */
    protected final void pausePoint() throws CancelledException {
        lock.lock();
        try {
            checkCancelled();
            if (pauseCount > 0) {
                JobStatus before = status;
                JobStatus pausedState = before == JobStatus.READY ? JobStatus.STANDBY : JobStatus.PAUSED;
                busy = false;
                while (pauseCount > 0 && !cancelled) {
                    if (status != pausedState) {
                        // entering the pause, or pausing again after a resume moved the job back to running
                        // before this thread woke up: either way the job is paused (again) now
                        pauseEpoch++;
                        lock.unlock();
                        try {
                            transition(pausedState);
                        } finally {
                            lock.lock();
                        }
                        continue;
                    }
                    changed.awaitUninterruptibly();
                }
                lock.unlock();
                try {
                    transition(before);
                } finally {
                    lock.lock();
                }
                busy = true;
                checkCancelled();
            }
        } finally {
            lock.unlock();
        }
    }

    private void checkCancelled() throws CancelledException {
        if (cancelled && (forceCancel || !wasReady)) {
            throw new CancelledException();
        }
    }

    /**
     * Charges {@code bytes} to the rate limit and sleeps as long as it says, waking early when the speed changes,
     * on pause (which is then honoured) or on cancel.
     */
    protected final void rateLimit(long bytes) throws CancelledException {
        long delay;
        lock.lock();
        try {
            delay = rateLimit.charge(bytes, System.nanoTime());
        } finally {
            lock.unlock();
        }
        lock.lock();
        try {
            rateSleeping = true;
        } finally {
            lock.unlock();
        }
        try {
            sleepNs(delay);
        } finally {
            lock.lock();
            try {
                rateSleeping = false;
            } finally {
                lock.unlock();
            }
        }
    }

    /**
     * A drain reached this job {@code times} times (QEMU's drained_begin/end pairs that pause and resume it). In
     * QEMU 7.2 the pause ends the job's rate-limit sleep and the resume lets it copy its next step before it sleeps
     * again: measured with {@code snapshot_blkdev}, one step for the transaction's drain of every node and one more
     * when the action drains the job's own node (which arrives while the job copies, so it is taken at the next
     * step head, see {@link #hasStepHeads}). A paused or cancelled job is unaffected.
     */
    void drained(int times) {
        lock.lock();
        try {
            if ((rateSleeping || hasStepHeads()) && pauseCount == 0 && !cancelled) {
                drainKicks += times;
                changed.signalAll();
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Whether the work loop calls {@link #stepHead} at the head of every step, as QEMU's stream_run and commit_run
     * sleep there: a drain that arrives while such a job copies is then taken at its next step head (QEMU pauses
     * the job there and, on resume, skips that head's sleep). Other jobs only have a sleep in progress cut short.
     */
    protected boolean hasStepHeads() {
        return false;
    }

    /**
     * The head of a step of a job with {@link #hasStepHeads step heads}: charges what the previous step copied
     * ({@code owedBytes}, 0 = nothing) to the rate limit and sleeps for it, unless a drain is owed a step: then the
     * sleep is skipped (QEMU's job_sleep_ns pauses instead of sleeping and returns after the resume). Then a pause
     * point.
     */
    protected final void stepHead(long owedBytes) throws CancelledException {
        boolean forgiven;
        lock.lock();
        try {
            forgiven = drainKicks > 0;
            if (forgiven) {
                drainKicks--;
                if (owedBytes > 0) {
                    rateLimit.charge(owedBytes, System.nanoTime()); // charged as QEMU charges it; no sleep
                }
            }
        } finally {
            lock.unlock();
        }
        if (forgiven || owedBytes == 0) {
            pausePoint();
        } else {
            rateLimit(owedBytes);
        }
    }

    /** Sleeps up to {@code ns} (not busy), returning early on any verb; then a pause point. */
    protected final void sleepNs(long ns) throws CancelledException {
        if (ns > 0) {
            lock.lock();
            try {
                busy = false;
                long kicksBefore = sleepKicks;
                long deadline = System.nanoTime() + ns;
                long left = ns;
                while (left > 0 && !cancelled && pauseCount == 0 && sleepKicks == kicksBefore
                        && !completeRequested && drainKicks == 0) {
                    try {
                        changed.awaitNanos(left);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        break;
                    }
                    left = deadline - System.nanoTime();
                }
                if (drainKicks > 0) {
                    drainKicks--;
                }
                busy = true;
            } finally {
                lock.unlock();
            }
        }
        pausePoint();
    }

    /** Waits until some verb changes the job (used by ready jobs idling for complete/cancel). */
    protected final void waitForVerb(long timeout, TimeUnit unit) {
        lock.lock();
        try {
            busy = false;
            try {
                changed.await(timeout, unit);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            busy = true;
        } finally {
            lock.unlock();
        }
    }

    /** What the work loop does after an I/O error, as the on-error policy decides. */
    protected enum ErrorAction {
        /** Fail the job with the error. */
        REPORT,
        /** Go on; the job still ends with the first error it met. */
        IGNORE,
        /** Pause (io-status failed); a resume retries the request that failed. */
        STOP
    }

    /**
     * Applies the on-error policy to an I/O error of the work loop (a read's policy or a write's, see the
     * constructors): emits BLOCK_JOB_ERROR and, for {@code stop},
     * pauses the job as a user pause would (so that {@code resume} continues it and a non-forced cancel is
     * refused). The caller retries (stop), skips (ignore) or fails (report).
     */
    protected final ErrorAction ioError(IOException e, boolean isRead) {
        boolean noSpace = IoErrors.isNoSpace(e);
        ErrorAction action = switch (isRead ? onError : onTargetError) {
            case REPORT -> ErrorAction.REPORT;
            case IGNORE -> ErrorAction.IGNORE;
            case STOP -> ErrorAction.STOP;
            case ENOSPC, AUTO -> noSpace ? ErrorAction.STOP : ErrorAction.REPORT;
        };
        LOG.info("job {}: I/O error ({}), action {}", id, e.getMessage(), action);
        // One step, as in QEMU's main loop (blockjob.c block_job_error_action): a client that has read
        // BLOCK_JOB_ERROR with action stop finds the job user-paused, so its block-job-resume is never refused as
        // "not paused". Lock order: transitionMonitor, then the bus, then the job's lock.
        synchronized (transitionMonitor) {
            context.events().atomically(() -> {
                context.events().publish(Event.now("BLOCK_JOB_ERROR", orderedMap("device", id,
                        "operation", isRead ? "read" : "write",
                        "action", action.name().toLowerCase(java.util.Locale.ROOT))));
                if (action == ErrorAction.STOP) {
                    lock.lock();
                    try {
                        if (!userPaused) {
                            userPaused = true;
                            pauseCount++;
                        }
                        ioFailed = true;
                        ioNoSpace = noSpace;
                        changed.signalAll();
                    } finally {
                        lock.unlock();
                    }
                }
            });
        }
        return action;
    }

    // ---------------------------------------------------------------- what each job type supplies

    /** The work loop. Returns when the work is done; throws CancelledException when cancelled. */
    protected abstract void run() throws Exception;

    /** On success, at finalization: the graph change (new backing link, pivot). */
    protected void prepare() throws Exception {
    }

    /** On cancel or failure: undo what must be undone; the chain must stay valid. */
    protected void abort() throws Exception {
    }

    /** Always, last: remove filters, release nodes, restore read-only state. */
    protected void clean() throws Exception {
    }

    /**
     * Whether the clean step gives up the job's nodes ({@code aborted}: the job failed or was cancelled), so that a
     * job not yet dismissed no longer makes them busy (a second job on them then meets {@code Job ID '...' already
     * in use} if it reuses the id). As QEMU calls block_job_remove_all_bdrv: backup always (block/backup.c
     * backup_clean), mirror and active commit always (block/mirror.c mirror_exit_common); an intermediate commit on
     * abort only (block/commit.c commit_abort); a stream never, keeping them until it is freed (dismissed).
     */
    protected boolean releasesNodesWhenClean(boolean aborted) {
        return true;
    }

    /**
     * Whether the job's filter is one of the nodes it blocks, so that a walk down the chain meets (and a busy error
     * names) the filter before the node under it: a stream's copy-on-read filter is; an intermediate commit's
     * commit_top is not (block/commit.c adds top..base and base, not its filter).
     */
    boolean blocksItsFilter() {
        return false;
    }

    /** The nodes this job holds (no other job may start on them). */
    public abstract java.util.List<BlockNode> blockedNodes();

    static Map<String, Object> orderedMap(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }
}
