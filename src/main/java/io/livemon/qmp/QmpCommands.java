package io.livemon.qmp;

import static io.livemon.qmp.QmpCommand.Flags.EXCLUSIVE;
import static io.livemon.qmp.QmpCommand.Flags.QUERY;

import io.livemon.Version;
import io.livemon.block.BackupJob;
import io.livemon.block.BlockDevice;
import io.livemon.block.BlockErrors;
import io.livemon.block.BlockException;
import io.livemon.block.BlockGraph;
import io.livemon.block.BlockNode;
import io.livemon.block.CommitJob;
import io.livemon.block.DriveOperations;
import io.livemon.block.Event;
import io.livemon.block.ExternalSnapshot;
import io.livemon.block.Job;
import io.livemon.block.JobInfo;
import io.livemon.block.MirrorJob;
import io.livemon.block.OnErrorPolicy;
import io.livemon.block.StreamJob;
import io.livemon.block.StreamRequest;
import io.livemon.monitor.HmpSession;
import io.livemon.monitor.Interpreter;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The QMP command table: every command livemon serves, with its 7.2 argument schema and a thin handler over the
 * block layer (the same typed operations HMP calls). Schema syntax: {@code ?name:type}, {@code ?} = optional,
 * types {@code str int bool enum(a|b) enum-list(a|b)}.
 */
final class QmpCommands {
    private static final String ON_ERROR = "enum(report|ignore|enospc|stop|auto)";
    private static final String SYNC = "enum(top|full|none|incremental|bitmap)";
    /** How long a cancel or finalize waits for the job's transitions before answering. */
    private static final long SETTLE_MILLIS = 10_000;

    private QmpCommands() {
    }

    static List<QmpCommand> table() {
        return List.of(
                QmpCommand.of("qmp_capabilities", "?enable:enum-list(oob)", EXCLUSIVE, QmpCommands::capabilities),
                QmpCommand.of("query-version", "", QUERY, (c, a) -> version()),
                QmpCommand.of("query-commands", "", QUERY, QmpCommands::queryCommands),
                QmpCommand.of("query-status", "", QUERY, QmpCommands::queryStatus),
                QmpCommand.of("query-name", "", QUERY,
                        (c, a) -> c.server().name() == null ? Json.obj() : Json.obj("name", c.server().name())),
                QmpCommand.of("query-block", "", QUERY, QmpCommands::queryBlock),
                QmpCommand.of("query-named-block-nodes", "?flat:bool", QUERY, QmpCommands::queryNamedBlockNodes),
                QmpCommand.of("query-block-jobs", "", QUERY, QmpCommands::queryBlockJobs),
                QmpCommand.of("query-blockstats", "?query-nodes:bool", QUERY, (c, a) -> {
                    List<Object> l = new ArrayList<>();
                    for (io.livemon.block.BlockStats s : c.graph().blockStats(a.bool("query-nodes", false))) {
                        l.add(QmpShapes.blockStats(s));
                    }
                    return l;
                }),
                QmpCommand.of("query-jobs", "", QUERY, QmpCommands::queryJobs),
                QmpCommand.of("block-stream", "?job-id:str device:str ?base:str ?base-node:str ?backing-file:str"
                        + " ?bottom:str ?speed:int ?on-error:" + ON_ERROR + " ?filter-node-name:str"
                        + " ?auto-finalize:bool ?auto-dismiss:bool", EXCLUSIVE, QmpCommands::blockStream),
                QmpCommand.of("block-commit", "?job-id:str device:str ?base-node:str ?base:str ?top-node:str"
                        + " ?top:str ?backing-file:str ?speed:int ?on-error:" + ON_ERROR + " ?filter-node-name:str"
                        + " ?auto-finalize:bool ?auto-dismiss:bool", EXCLUSIVE, QmpCommands::blockCommit),
                QmpCommand.of("drive-mirror", "?job-id:str device:str target:str ?format:str ?node-name:str"
                        + " ?replaces:str sync:" + SYNC + " ?mode:enum(existing|absolute-paths) ?speed:int"
                        + " ?granularity:uint32 ?buf-size:int ?on-source-error:" + ON_ERROR + " ?on-target-error:"
                        + ON_ERROR + " ?unmap:bool ?copy-mode:enum(background|write-blocking) ?auto-finalize:bool"
                        + " ?auto-dismiss:bool", EXCLUSIVE, QmpCommands::driveMirror),
                QmpCommand.of("blockdev-mirror", "?job-id:str device:str target:str ?replaces:str sync:" + SYNC
                        + " ?speed:int ?granularity:uint32 ?buf-size:int ?on-source-error:" + ON_ERROR
                        + " ?on-target-error:" + ON_ERROR + " ?filter-node-name:str"
                        + " ?copy-mode:enum(background|write-blocking) ?auto-finalize:bool ?auto-dismiss:bool",
                        EXCLUSIVE, QmpCommands::blockdevMirror),
                QmpCommand.of("drive-backup", "?job-id:str device:str sync:" + SYNC + " ?speed:int ?bitmap:str"
                        + " ?bitmap-mode:enum(on-success|never|always) ?compress:bool ?on-source-error:" + ON_ERROR
                        + " ?on-target-error:" + ON_ERROR + " ?auto-finalize:bool ?auto-dismiss:bool"
                        + " ?filter-node-name:str target:str ?format:str ?mode:enum(existing|absolute-paths)",
                        EXCLUSIVE, QmpCommands::driveBackup),
                QmpCommand.of("blockdev-backup", "?job-id:str device:str target:str sync:" + SYNC + " ?speed:int"
                        + " ?bitmap:str ?bitmap-mode:enum(on-success|never|always) ?compress:bool"
                        + " ?on-source-error:" + ON_ERROR + " ?on-target-error:" + ON_ERROR
                        + " ?auto-finalize:bool ?auto-dismiss:bool ?filter-node-name:str",
                        EXCLUSIVE, QmpCommands::blockdevBackup),
                QmpCommand.of("transaction", QmpCommand.ANY_MEMBERS, EXCLUSIVE, QmpCommands::transaction),
                QmpCommand.of("blockdev-snapshot-sync", "?device:str ?node-name:str snapshot-file:str"
                        + " ?snapshot-node-name:str ?format:str ?mode:enum(existing|absolute-paths)", EXCLUSIVE,
                        QmpCommands::snapshotSync),
                QmpCommand.of("block-job-set-speed", "device:str speed:int", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().job(a.str("device")).setSpeed(a.integer("speed", 0)))),
                QmpCommand.of("block-job-pause", "device:str", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().job(a.str("device")).pause())),
                QmpCommand.of("block-job-resume", "device:str", EXCLUSIVE,
                        (c, a) -> resume(c, c.graph().job(a.str("device")))),
                QmpCommand.of("block-job-cancel", "device:str ?force:bool", EXCLUSIVE,
                        (c, a) -> settle(c, c.graph().job(a.str("device")),
                                j -> j.cancel(a.bool("force", false)))),
                QmpCommand.of("block-job-complete", "device:str", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().job(a.str("device")).complete())),
                QmpCommand.of("block-job-finalize", "id:str", EXCLUSIVE,
                        (c, a) -> settle(c, c.graph().job(a.str("id")), Job::finalizeJob)),
                QmpCommand.of("block-job-dismiss", "id:str", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().job(a.str("id")).dismiss())),
                QmpCommand.of("job-cancel", "id:str", EXCLUSIVE,
                        (c, a) -> settle(c, c.graph().genericJob(a.str("id")), j -> j.cancel(true))),
                QmpCommand.of("job-pause", "id:str", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().genericJob(a.str("id")).pause())),
                QmpCommand.of("job-resume", "id:str", EXCLUSIVE,
                        (c, a) -> resume(c, c.graph().genericJob(a.str("id")))),
                QmpCommand.of("job-complete", "id:str", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().genericJob(a.str("id")).complete())),
                QmpCommand.of("job-finalize", "id:str", EXCLUSIVE,
                        (c, a) -> settle(c, c.graph().genericJob(a.str("id")), Job::finalizeJob)),
                QmpCommand.of("job-dismiss", "id:str", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().genericJob(a.str("id")).dismiss())),
                QmpCommand.of("blockdev-add", QmpCommand.ANY_MEMBERS, EXCLUSIVE, (c, a) -> done(
                        () -> c.graph().addBlockdev(io.livemon.block.BlockdevOptions.fromMap(withNulls(a.all()))))),
                QmpCommand.of("blockdev-del", "node-name:str", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().deleteBlockdev(a.str("node-name")))),
                QmpCommand.of("block_resize", "?device:str ?node-name:str size:int", EXCLUSIVE,
                        (c, a) -> done(() -> DriveOperations.resize(c.graph(), a.str("device"), a.str("node-name"),
                                a.integer("size", 0)))),
                QmpCommand.of("eject", "?device:str ?id:str ?force:bool", EXCLUSIVE, QmpCommands::eject),
                QmpCommand.of("blockdev-change-medium", "?device:str ?id:str filename:str ?format:str ?force:bool"
                        + " ?read-only-mode:enum(retain|read-only|read-write)", EXCLUSIVE,
                        QmpCommands::changeMedium),
                QmpCommand.of("human-monitor-command", "command-line:str ?cpu-index:int", EXCLUSIVE,
                        QmpCommands::humanMonitorCommand),
                QmpCommand.of("device_add", QmpCommand.ANY_MEMBERS, EXCLUSIVE, QmpCommands::deviceAdd),
                QmpCommand.of("device_del", "id:str", EXCLUSIVE,
                        (c, a) -> done(() -> c.graph().detachDevice(a.str("id")))),
                QmpCommand.of("quit", "", EXCLUSIVE, QmpCommands::quit));
    }

    /**
     * {@code m} with JSON null ({@link Json#NULL}) as Java null, in nested objects and lists too: the block layer's
     * option readers take null for JSON null (BlockdevOptions' {@code "backing": null}).
     */
    @SuppressWarnings("unchecked")
    static Map<String, Object> withNulls(Map<String, Object> m) {
        Map<String, Object> r = new java.util.LinkedHashMap<>();
        for (Map.Entry<String, Object> e : m.entrySet()) {
            r.put(e.getKey(), withNull(e.getValue()));
        }
        return r;
    }

    @SuppressWarnings("unchecked")
    private static Object withNull(Object v) {
        if (v == Json.NULL) {
            return null;
        }
        if (v instanceof Map<?, ?> m) {
            return withNulls((Map<String, Object>) m);
        }
        if (v instanceof List<?> l) {
            List<Object> r = new ArrayList<>();
            for (Object o : l) {
                r.add(withNull(o));
            }
            return r;
        }
        return v;
    }

    @FunctionalInterface
    private interface Op {
        void run() throws BlockException;
    }

    @FunctionalInterface
    private interface JobOp {
        void run(Job job) throws BlockException;
    }

    private static Object done(Op op) throws BlockException {
        op.run();
        return Json.obj();
    }

    // ---------------------------------------------------------------- protocol and queries

    static Map<String, Object> version() {
        return Json.obj("qemu", Json.obj("major", (long) Version.QEMU_MAJOR, "minor", (long) Version.QEMU_MINOR,
                "micro", (long) Version.QEMU_MICRO), "package", QmpServer.packageString());
    }

    private static Object capabilities(QmpContext c, QmpCommand.Args a) throws QmpException {
        if (c.client().negotiated()) {
            throw QmpException.commandNotFound("Capabilities negotiation is already complete, command ignored");
        }
        c.client().setNegotiated(a.has("enable"));
        return Json.obj();
    }

    private static Object queryCommands(QmpContext c, QmpCommand.Args a) {
        List<Object> l = new ArrayList<>();
        for (QmpCommand cmd : c.server().commands()) {
            l.add(Json.obj("name", cmd.name()));
        }
        return l;
    }

    private static Object queryStatus(QmpContext c, QmpCommand.Args a) {
        boolean paused = c.server().hmp().startedPaused();
        return Json.obj("running", !paused, "singlestep", false, "status", paused ? "prelaunch" : "running");
    }

    private static Object queryBlock(QmpContext c, QmpCommand.Args a) {
        List<Object> l = new ArrayList<>();
        for (BlockDevice d : c.graph().devices()) {
            l.add(QmpShapes.blockInfo(d));
        }
        return l;
    }

    private static Object queryNamedBlockNodes(QmpContext c, QmpCommand.Args a) {
        boolean flat = a.bool("flat", false);
        List<Object> l = new ArrayList<>();
        for (BlockNode n : c.graph().nodes()) {
            BlockDevice d = c.graph().deviceOf(n);
            String cache = d != null && d.visibleRoot() == n ? d.cacheMode() : null;
            l.add(QmpShapes.blockDeviceInfo(n, cache, flat));
        }
        return l;
    }

    private static Object queryBlockJobs(QmpContext c, QmpCommand.Args a) {
        List<Object> l = new ArrayList<>();
        for (JobInfo j : listedJobs(c.graph())) {
            l.add(QmpShapes.blockJobInfo(j));
        }
        return l;
    }

    private static Object queryJobs(QmpContext c, QmpCommand.Args a) {
        List<Object> l = new ArrayList<>();
        for (JobInfo j : listedJobs(c.graph())) {
            l.add(QmpShapes.jobInfo(j));
        }
        return l;
    }

    // ---------------------------------------------------------------- block operations

    private static Object blockStream(QmpContext c, QmpCommand.Args a) throws QmpException, BlockException {
        String onError = a.has("on-error") ? a.str("on-error") : "report";
        StreamRequest r = new StreamRequest(a.str("job-id"), a.str("device"), a.str("base"), a.str("base-node"),
                a.str("backing-file"), a.integer("speed", 0), OnErrorPolicy.fromQapi(onError),
                a.bool("auto-finalize", true), a.bool("auto-dismiss", true), a.str("bottom"),
                a.str("filter-node-name"));
        StreamJob.start(c.graph(), r);
        return Json.obj();
    }

    private static Object blockCommit(QmpContext c, QmpCommand.Args a) throws QmpException, BlockException {
        String onError = a.has("on-error") ? a.str("on-error") : "report";
        CommitJob.Request r = new CommitJob.Request(a.str("job-id"), a.str("device"), a.str("base-node"),
                a.str("base"), a.str("top-node"), a.str("top"), a.str("backing-file"), a.integer("speed", 0),
                OnErrorPolicy.fromQapi(onError), a.bool("auto-finalize", true), a.bool("auto-dismiss", true),
                a.str("filter-node-name"));
        CommitJob.start(c.graph(), r);
        return Json.obj();
    }

    /**
     * device_add of a storage device (qdev's properties: {@code driver}, {@code id}, {@code drive}, and the bus
     * placement ones, which livemon takes without a bus to place into): an attachment, as {@code -device}.
     */
    private static Object deviceAdd(QmpContext c, QmpCommand.Args a) throws QmpException, BlockException {
        Map<String, Object> m = a.all();
        if (!(m.get("driver") instanceof String driver)) {
            throw QmpException.of(BlockErrors.missingParameter("driver"));
        }
        for (String k : m.keySet()) {
            if (!Set.of("driver", "id", "drive", "bus", "addr", "scsi-id", "lun", "channel", "serial", "bootindex")
                    .contains(k)) {
                throw QmpException.generic("Property '" + driver + "." + k + "' not found");
            }
        }
        c.graph().attachDevice(driver, m.get("id") instanceof String id ? id : null,
                m.get("drive") instanceof String drive ? drive : null);
        return Json.obj();
    }

    private static Object driveMirror(QmpContext c, QmpCommand.Args a) throws QmpException, BlockException {
        return mirror(c, a, a.str("format"), a.str("node-name"), "existing".equals(a.str("mode")), false);
    }

    private static Object blockdevMirror(QmpContext c, QmpCommand.Args a) throws QmpException, BlockException {
        if (a.has("filter-node-name")) {
            throw QmpException.generic("livemon does not support 'filter-node-name' (the mirror_top filter is"
                    + " always implicit)");
        }
        return mirror(c, a, null, null, true, true);
    }

    /**
     * drive-mirror ({@code targetIsNode} false: a file to create or reuse) and blockdev-mirror (true: a node
     * blockdev-add opened) share their arguments and their checks.
     */
    private static Object mirror(QmpContext c, QmpCommand.Args a, String format, String nodeName, boolean reuse,
                                 boolean targetIsNode) throws QmpException, BlockException {
        if (a.has("replaces")) {
            throw QmpException.generic("livemon does not support 'replaces'");
        }
        MirrorJob.Request r = new MirrorJob.Request(a.str("job-id"), a.str("device"), a.str("target"), format,
                nodeName, a.str("sync"), reuse, a.integer("speed", 0), a.integer("granularity", 0),
                a.integer("buf-size", 0), onError(a, "on-source-error"), onError(a, "on-target-error"),
                a.bool("auto-finalize", true), a.bool("auto-dismiss", true), targetIsNode);
        MirrorJob.start(c.graph(), r, c.server().stdout()::println);
        return Json.obj();
    }

    private static Object driveBackup(QmpContext c, QmpCommand.Args a) throws QmpException, BlockException {
        return backup(c, a, a.str("format"), "existing".equals(a.str("mode")), false);
    }

    private static Object blockdevBackup(QmpContext c, QmpCommand.Args a) throws QmpException, BlockException {
        return backup(c, a, null, true, true);
    }

    /**
     * drive-backup ({@code targetIsNode} false: a file to create or reuse) and blockdev-backup (true: a node
     * blockdev-add opened) share their arguments and their checks.
     */
    private static Object backup(QmpContext c, QmpCommand.Args a, String format, boolean reuse, boolean targetIsNode)
            throws QmpException, BlockException {
        if (a.has("filter-node-name")) {
            throw QmpException.generic("livemon does not support 'filter-node-name' (the copy-before-write filter"
                    + " is always implicit)");
        }
        BackupJob.Request r = new BackupJob.Request(a.str("job-id"), a.str("device"), a.str("target"), format,
                a.str("sync"), reuse, a.integer("speed", 0), a.str("bitmap"), a.str("bitmap-mode"),
                a.bool("compress", false), onError(a, "on-source-error"), onError(a, "on-target-error"),
                a.bool("auto-finalize", true), a.bool("auto-dismiss", true), targetIsNode);
        BackupJob.start(c.graph(), r, c.server().stdout()::println);
        return Json.obj();
    }

    /** A mirror's or backup's on-source-error / on-target-error: {@code report} when absent (blockdev.c). */
    private static OnErrorPolicy onError(QmpCommand.Args a, String name) throws QmpException {
        return OnErrorPolicy.fromQapi(a.has(name) ? a.str(name) : "report");
    }

    /** Transaction action types livemon runs, to the command each one's data is checked and run as. */
    private static final Map<String, String> TRANSACTION_ACTIONS = Map.of("drive-backup", "drive-backup",
            "blockdev-backup", "blockdev-backup", "blockdev-snapshot-sync", "blockdev-snapshot-sync", "abort", "");

    /**
     * QMP transaction: every action's data is checked first; then the actions run in order, and when one fails
     * (an {@code abort} action always does: {@code Transaction aborted using Abort action}) the backup jobs the
     * earlier actions started are cancelled again. Unlike QEMU, a snapshot an earlier action took stays (QEMU
     * prepares every action before it commits any); the tests that use transactions combine backups.
     */
    private static Object transaction(QmpContext c, QmpCommand.Args a) throws QmpException, BlockException {
        for (String k : a.all().keySet()) {
            if (!k.equals("actions") && !k.equals("properties")) {
                throw QmpException.of(BlockErrors.unexpectedParameter(k));
            }
        }
        Object actions = a.all().get("actions");
        if (actions == null) {
            throw QmpException.of(BlockErrors.missingParameter("actions"));
        }
        if (!(actions instanceof List<?> list)) {
            throw QmpException.of(BlockErrors.invalidParameterType("actions", "array"));
        }
        List<QmpCommand> commands = new ArrayList<>();
        List<QmpCommand.Args> args = new ArrayList<>();
        for (Object item : list) {
            if (!(item instanceof Map<?, ?> action)) {
                throw QmpException.of(BlockErrors.invalidParameterType("actions[" + args.size() + "]", "object"));
            }
            Object type = action.get("type");
            if (!(type instanceof String t)) {
                throw QmpException.of(BlockErrors.missingParameter("type"));
            }
            String command = TRANSACTION_ACTIONS.get(t);
            if (command == null) {
                throw QmpException.of(BlockErrors.valueNotAccepted("type", t));
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> data = action.get("data") instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
            QmpCommand cmd = command.isEmpty() ? null : table().stream().filter(x -> x.name().equals(command))
                    .findFirst().orElseThrow();
            commands.add(cmd);
            args.add(cmd == null ? null : cmd.check(data));
        }
        java.util.Set<String> before = new java.util.HashSet<>();
        c.graph().jobInfos().forEach(j -> before.add(j.id()));
        try {
            for (int i = 0; i < commands.size(); i++) {
                if (commands.get(i) == null) {
                    throw QmpException.generic("Transaction aborted using Abort action");
                }
                commands.get(i).handler().run(c, args.get(i));
            }
        } catch (QmpException | BlockException | RuntimeException e) {
            for (io.livemon.block.JobInfo j : c.graph().jobInfos()) {
                if (!before.contains(j.id())) {
                    try {
                        c.graph().job(j.id()).cancel(true);
                    } catch (BlockException ignored) {
                        // already ending
                    }
                }
            }
            throw e;
        }
        return Json.obj();
    }

    private static Object snapshotSync(QmpContext c, QmpCommand.Args a) throws BlockException {
        PrintStream stdout = c.server().stdout();
        ExternalSnapshot.take(c.graph(), a.str("device"), a.str("node-name"), a.str("snapshot-file"),
                a.str("format"), "existing".equals(a.str("mode")), a.str("snapshot-node-name"), stdout::println);
        return Json.obj();
    }

    private static Object eject(QmpContext c, QmpCommand.Args a) throws BlockException {
        String id = a.has("device") ? a.str("device") : a.str("id");
        DriveOperations.eject(c.graph(), id == null ? "" : id, a.bool("force", false));
        return Json.obj();
    }

    private static Object changeMedium(QmpContext c, QmpCommand.Args a) throws BlockException {
        String id = a.has("device") ? a.str("device") : a.str("id");
        DriveOperations.changeMedium(c.graph(), id == null ? "" : id, a.str("filename"), a.str("format"),
                a.bool("force", false), a.str("read-only-mode"));
        return Json.obj();
    }

    /**
     * Applies a verb whose transitions QEMU carries out before it answers (cancel, finalize): the reply waits until
     * the job has concluded (or is gone, when it dismisses itself), so those events precede it.
     */
    private static Object settle(QmpContext c, Job job, JobOp op) throws BlockException {
        String target = job.autoDismiss() ? "null" : "concluded";
        CountDownLatch settled = new CountDownLatch(1);
        AutoCloseable sub = c.graph().events().subscribe(e -> {
            if (e.name().equals("JOB_STATUS_CHANGE") && job.id().equals(e.data().get("id"))
                    && target.equals(e.data().get("status"))) {
                settled.countDown();
            }
        });
        try {
            op.run(job);
        } catch (BlockException | RuntimeException e) {
            closeQuietly(sub);
            throw e;
        }
        c.beforeReply(() -> {
            try {
                if (settled.await(SETTLE_MILLIS, TimeUnit.MILLISECONDS) && job.autoDismiss()) {
                    awaitRemoved(c.graph(), job);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                closeQuietly(sub);
            }
        });
        return Json.obj();
    }

    /**
     * Resumes a job. QEMU retries the request that stopped a job (on-error=stop) inside the resume command, so a
     * retry that fails again raises {@code running}, BLOCK_JOB_ERROR and {@code paused} before the reply: for a job
     * whose io-status is failed the reply waits (bounded) until the retry is decided — the job left {@code running}
     * again or made progress.
     */
    private static Object resume(QmpContext c, Job job) throws BlockException {
        JobInfo before = job.info();
        if (!"failed".equals(before.ioStatus())) {
            job.resume();
            return Json.obj();
        }
        CountDownLatch decided = new CountDownLatch(1);
        boolean[] running = new boolean[1];
        AutoCloseable sub = c.graph().events().subscribe(e -> {
            if (e.name().equals("JOB_STATUS_CHANGE") && job.id().equals(e.data().get("id"))) {
                if ("running".equals(e.data().get("status"))) {
                    running[0] = true;
                } else if (running[0]) {
                    decided.countDown();
                }
            }
        });
        try {
            job.resume();
        } catch (BlockException | RuntimeException e) {
            closeQuietly(sub);
            throw e;
        }
        c.beforeReply(() -> {
            try {
                long deadline = System.currentTimeMillis() + 2000;
                while (System.currentTimeMillis() < deadline && !decided.await(2, TimeUnit.MILLISECONDS)) {
                    if (job.info().offset() != before.offset()) {
                        return;
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                closeQuietly(sub);
            }
        });
        return Json.obj();
    }

    /** The job announces {@code null} just before the graph forgets it; wait for that too (bounded). */
    private static void awaitRemoved(BlockGraph graph, Job job) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 2000;
        while (System.currentTimeMillis() < deadline) {
            try {
                if (graph.genericJob(job.id()) != job) {
                    return;
                }
            } catch (BlockException gone) {
                return;
            }
            Thread.sleep(1);
        }
    }

    /** Jobs as the query commands list them: QEMU never lists a job that reached {@code null}. */
    private static List<JobInfo> listedJobs(BlockGraph graph) {
        List<JobInfo> l = new ArrayList<>(graph.jobInfos());
        l.removeIf(j -> j.status() == io.livemon.block.JobStatus.NULL);
        return l;
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // unsubscribing cannot fail in a way that matters here
        }
    }

    // ---------------------------------------------------------------- HMP passthrough and quit

    private static Object humanMonitorCommand(QmpContext c, QmpCommand.Args a) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(buf, true, StandardCharsets.UTF_8);
        HmpSession s = c.server().hmp().withOutput(ps, c.server().stdout());
        Interpreter.execute(s, a.str("command-line"));
        ps.flush();
        String text = buf.toString(StandardCharsets.UTF_8).replace("\r\n", "\n").replace("\n", "\r\n");
        if (s.quitRequested()) {
            shutdownEvent(c.graph());
            c.beforeReply(() -> cancelJobsForQuit(c.graph()));
            c.afterReply(() -> c.server().quitAfterReply(c.client()));
        }
        return text;
    }

    private static Object quit(QmpContext c, QmpCommand.Args a) {
        shutdownEvent(c.graph());
        // As QEMU: jobs kept by auto-dismiss=false go to null after SHUTDOWN, before the reply.
        c.graph().dismissConcludedJobs();
        // after the events held during the command, so the jobs' events go out (in order) before the reply
        c.beforeReply(() -> cancelJobsForQuit(c.graph()));
        c.afterReply(() -> c.server().quitAfterReply(c.client()));
        return Json.obj();
    }

    /** Longest a quit waits for one job to end before it answers; the shutdown after the reply waits again. */
    private static final long QUIT_JOB_MILLIS = 3000;

    /**
     * QEMU's exit (softmmu/runstate.c qemu_cleanup, job_cancel_sync_all) force-cancels every job, newest first, one
     * after the other, before the quit is answered: each job's aborting, BLOCK_JOB_CANCELLED, concluded and null
     * come after SHUTDOWN and before the reply. Paused, stopped (I/O error), ready and throttled jobs all take a
     * forced cancel; a job that does not end in time is left to the shutdown that follows the reply.
     */
    private static void cancelJobsForQuit(BlockGraph graph) {
        for (JobInfo info : listedJobs(graph)) { // newest first, as query-block-jobs lists them
            Job job;
            try {
                job = graph.genericJob(info.id());
                job.cancel(true);
            } catch (BlockException e) {
                continue; // concluded meanwhile (kept by auto-dismiss=false) or gone
            }
            long deadline = System.currentTimeMillis() + QUIT_JOB_MILLIS;
            while (System.currentTimeMillis() < deadline) {
                io.livemon.block.JobStatus st = job.status();
                if (st == io.livemon.block.JobStatus.NULL || st == io.livemon.block.JobStatus.CONCLUDED) {
                    break;
                }
                try {
                    Thread.sleep(1);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
            // a job reaches concluded/null inside the bus's atomic step; taking the bus waits until its events are out
            graph.events().atomically(() -> { });
            if (job.status() == io.livemon.block.JobStatus.CONCLUDED && !job.autoDismiss()) {
                try {
                    job.dismiss(); // QEMU's job_cancel_sync_all dismisses what it cancelled
                } catch (BlockException e) {
                    // already gone
                }
            }
        }
    }

    private static void shutdownEvent(BlockGraph graph) {
        Instant t = Instant.now();
        graph.events().publish(new Event("SHUTDOWN", Json.obj("guest", false, "reason", "host-qmp-quit"),
                t.getEpochSecond() * 1_000_000L + t.getNano() / 1000));
    }
}
