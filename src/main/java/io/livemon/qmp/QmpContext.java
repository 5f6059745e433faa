package io.livemon.qmp;

import io.livemon.block.BlockGraph;
import java.util.ArrayList;
import java.util.List;

/** What a command handler sees: the server's state and the client it answers. */
final class QmpContext {
    private final QmpServer server;
    private final QmpClient client;
    private final List<Runnable> beforeReply = new ArrayList<>();
    private final List<Runnable> afterReply = new ArrayList<>();

    QmpContext(QmpServer server, QmpClient client) {
        this.server = server;
        this.client = client;
    }

    QmpServer server() {
        return server;
    }

    QmpClient client() {
        return client;
    }

    BlockGraph graph() {
        return server.graph();
    }

    /** Something to do once the command succeeded, outside the command lock, before its reply is queued. */
    void beforeReply(Runnable r) {
        beforeReply.add(r);
    }

    /** Something to do once the reply is queued. */
    void afterReply(Runnable r) {
        afterReply.add(r);
    }

    /** Whether the command registered work that must run before its reply (waits for job transitions). */
    boolean waitsBeforeReply() {
        return !beforeReply.isEmpty();
    }

    void runBeforeReply() {
        beforeReply.forEach(Runnable::run);
    }

    void runAfterReply() {
        afterReply.forEach(Runnable::run);
    }
}
