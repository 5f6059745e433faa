package io.livemon.qmp;

import io.livemon.Version;
import io.livemon.block.BlockException;
import io.livemon.block.BlockGraph;
import io.livemon.block.Event;
import io.livemon.monitor.HmpSession;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * livemon's QMP server: listens on unix and TCP sockets, serves several clients per socket (one reader and one
 * writer thread each), dispatches their commands through {@link QmpCommands}'s table and sends every block-layer
 * event to every client that has completed capabilities negotiation.
 */
public final class QmpServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(QmpServer.class);

    /** Tunables (defaults suit a monitor; tests shrink them). */
    public record Limits(int maxMessageChars, int maxQueuedMessages, long maxQueuedBytes) {
        public static final Limits DEFAULT = new Limits(1 << 20, 10_000, 16L << 20);
    }

    private final BlockGraph graph;
    private final HmpSession hmp;
    private final PrintStream stdout;
    private final Runnable onQuit;
    private final String name;
    private final Limits limits;
    private final Map<String, QmpCommand> commands = new LinkedHashMap<>();
    /** Held while a non-query command runs: commands change the graph one at a time, as under QEMU's big lock. */
    private final ReentrantLock commandLock = new ReentrantLock();
    /** Event hold during a command (see {@link #holdEvents}): the holding thread and what it held back. */
    private final Object holdLock = new Object();
    private Thread holder;
    private final List<Event> held = new ArrayList<>();
    private final List<QmpClient> clients = new CopyOnWriteArrayList<>();
    private final List<ServerSocketChannel> listeners = new CopyOnWriteArrayList<>();
    private final List<Path> socketFiles = new CopyOnWriteArrayList<>();
    private final ExecutorService threads;
    private final AutoCloseable subscription;
    private volatile boolean closed;

    /**
     * @param hmp    the session human-monitor-command runs in (its output is redirected per command)
     * @param stdout where HMP output that QEMU writes to its standard output goes (qemu-io, Formatting lines)
     * @param onQuit run once after {@code quit} has been answered: the launcher shuts livemon down
     * @param name   {@code -name}, or null
     */
    public QmpServer(BlockGraph graph, HmpSession hmp, PrintStream stdout, Runnable onQuit, String name,
                     Limits limits) {
        this.graph = graph;
        this.hmp = hmp;
        this.stdout = stdout;
        this.onQuit = onQuit;
        this.name = name;
        this.limits = limits;
        for (QmpCommand c : QmpCommands.table()) {
            commands.put(c.name(), c);
        }
        AtomicInteger n = new AtomicInteger();
        this.threads = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "qmp-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.subscription = graph.events().subscribe(this::broadcast);
    }

    public QmpServer(BlockGraph graph, HmpSession hmp, PrintStream stdout, Runnable onQuit, String name) {
        this(graph, hmp, stdout, onQuit, name, Limits.DEFAULT);
    }

    BlockGraph graph() {
        return graph;
    }

    HmpSession hmp() {
        return hmp;
    }

    PrintStream stdout() {
        return stdout;
    }

    String name() {
        return name;
    }

    int maxMessageChars() {
        return limits.maxMessageChars();
    }

    Iterable<QmpCommand> commands() {
        return commands.values();
    }

    // ---------------------------------------------------------------- listening

    /**
     * Listens on a unix socket readable and writable by its owner only. The socket is bound under a private
     * temporary name and renamed into place once its mode is 0600, so it is never reachable with wider
     * permissions; an existing socket file at {@code path} is replaced, as QEMU does.
     */
    public Path listenUnix(Path path) throws IOException {
        Path target = path.toAbsolutePath();
        Path dir = target.getParent();
        ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            Path tmpDir = Files.createTempDirectory(dir, ".livemon-qmp-",
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            Path tmp = tmpDir.resolve("s");
            try {
                ch.bind(UnixDomainSocketAddress.of(tmp));
                Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-------"));
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } finally {
                Files.deleteIfExists(tmp);
                Files.deleteIfExists(tmpDir);
            }
        } catch (IOException e) {
            ch.close();
            throw new IOException("Failed to bind socket to " + path + ": " + e.getMessage(), e);
        }
        socketFiles.add(target);
        accept(ch, "unix:" + path);
        return target;
    }

    /** Listens on TCP; an empty host means the loopback address. Returns the bound address (port 0 picks one). */
    public InetSocketAddress listenTcp(String host, int port) throws IOException {
        ServerSocketChannel ch = ServerSocketChannel.open();
        ch.setOption(java.net.StandardSocketOptions.SO_REUSEADDR, true);
        InetSocketAddress addr = host == null || host.isEmpty()
                ? new InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), port)
                : new InetSocketAddress(host, port);
        try {
            ch.bind(addr);
        } catch (IOException e) {
            ch.close();
            throw new IOException("Failed to bind socket to " + addr + ": " + e.getMessage(), e);
        }
        InetSocketAddress bound = (InetSocketAddress) ch.getLocalAddress();
        accept(ch, "tcp:" + bound);
        return bound;
    }

    private void accept(ServerSocketChannel ch, String what) {
        listeners.add(ch);
        LOG.info("QMP listening on {}", what);
        threads.execute(() -> {
            while (!closed) {
                SocketChannel c;
                try {
                    c = ch.accept();
                } catch (ClosedChannelException e) {
                    return;
                } catch (IOException e) {
                    if (!closed) {
                        LOG.warn("QMP accept on {} failed", what, e);
                    }
                    return;
                }
                String peer;
                try {
                    SocketAddress a = c.getRemoteAddress();
                    peer = what + (a instanceof InetSocketAddress ? " from " + a : "");
                } catch (IOException e) {
                    peer = what;
                }
                serve(c, peer);
            }
        });
    }

    /**
     * Serves QMP on an already connected channel: a socket livemon connected to or accepted, a descriptor it
     * inherited ({@code -chardev socket,fd=N}), or its standard streams ({@code -qmp stdio}). Sends the greeting at
     * once, as QEMU does.
     */
    public void serve(java.nio.channels.ByteChannel c, String peer) {
        QmpClient client = new QmpClient(this, c, peer, limits.maxQueuedMessages(), limits.maxQueuedBytes());
        clients.add(client);
        LOG.info("QMP client connected on {}", peer);
        client.send(greeting());
        threads.execute(client::writeLoop);
        threads.execute(client::readLoop);
    }

    static Map<String, Object> greeting() {
        return Json.obj("QMP", Json.obj("version", QmpCommands.version(), "capabilities", List.of("oob")));
    }

    void clientGone(QmpClient c) {
        clients.remove(c);
    }

    /** Number of connected clients. */
    public int clientCount() {
        return clients.size();
    }

    private void broadcast(Event e) {
        synchronized (holdLock) {
            if (holder != null && holder != Thread.currentThread()) {
                held.add(e);
                return;
            }
            send(e);
        }
    }

    /**
     * Starts holding back events that other threads (jobs) raise while the calling thread runs a command: in QEMU
     * a command runs to its end before any job coroutine continues, so those events follow its reply (a stream's
     * first I/O error comes after block-stream's {@code return}). Returns false when another command holds already.
     */
    private boolean holdEvents() {
        synchronized (holdLock) {
            if (holder != null) {
                return false;
            }
            holder = Thread.currentThread();
            return true;
        }
    }

    /** Runs {@code reply} (may be null), then sends the held events in order and stops holding. */
    private void releaseEvents(Runnable reply) {
        synchronized (holdLock) {
            if (reply != null) {
                reply.run();
            }
            held.forEach(this::send);
            held.clear();
            holder = null;
        }
    }

    private void send(Event e) {
        Map<String, Object> msg = null;
        for (QmpClient c : clients) {
            if (c.negotiated()) {
                if (msg == null) {
                    msg = QmpShapes.event(e);
                }
                c.send(msg);
            }
        }
    }

    // ---------------------------------------------------------------- dispatch

    static Map<String, Object> errorReply(QmpException e, Object id) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("error", Json.obj("class", e.errorClass().wireName(), "desc", e.desc()));
        if (id != null) {
            m.put("id", id);
        }
        return m;
    }

    static Map<String, Object> returnReply(Object value, Object id) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("return", value);
        if (id != null) {
            m.put("id", id);
        }
        return m;
    }

    /** Runs one request from {@code client} and queues its reply. */
    @SuppressWarnings("unchecked")
    void dispatch(QmpClient client, Object request) {
        if (!(request instanceof Map)) {
            client.send(errorReply(QmpException.generic("QMP input must be a JSON object"), null));
            return;
        }
        Map<String, Object> req = (Map<String, Object>) request;
        Object id = req.get("id");
        QmpContext ctx = new QmpContext(this, client);
        Object result;
        boolean holding = false;
        try {
            String cmdName = null;
            Map<String, Object> arguments = null;
            boolean execOob = false;
            for (Map.Entry<String, Object> m : req.entrySet()) {
                switch (m.getKey()) {
                    case "execute", "exec-oob" -> {
                        if (m.getKey().equals("exec-oob")) {
                            if (!client.oobEnabled()) {
                                throw QmpException.generic("QMP input member 'exec-oob' is unexpected");
                            }
                            execOob = true;
                        }
                        if (!(m.getValue() instanceof String s)) {
                            throw QmpException.generic("QMP input member '" + m.getKey() + "' must be a string");
                        }
                        cmdName = s;
                    }
                    case "arguments" -> {
                        if (!(m.getValue() instanceof Map)) {
                            throw QmpException.generic("QMP input member 'arguments' must be an object");
                        }
                        arguments = (Map<String, Object>) m.getValue();
                    }
                    case "id" -> {
                    }
                    default -> throw QmpException.generic("QMP input member '" + m.getKey() + "' is unexpected");
                }
            }
            if (cmdName == null) {
                throw QmpException.generic("QMP input lacks member 'execute'");
            }
            QmpCommand cmd = commands.get(cmdName);
            if (!client.negotiated() && !cmdName.equals("qmp_capabilities")) {
                throw QmpException.commandNotFound("Expecting capabilities negotiation with 'qmp_capabilities'");
            }
            if (cmd == null) {
                throw QmpException.commandNotFound("The command " + cmdName + " has not been found");
            }
            if (execOob) {
                throw QmpException.generic("The command " + cmdName + " does not support OOB");
            }
            QmpCommand.Args args = cmd.check(arguments);
            boolean exclusive = cmd.flags() == QmpCommand.Flags.EXCLUSIVE;
            if (exclusive) {
                commandLock.lock();
            }
            holding = exclusive && holdEvents();
            try {
                result = cmd.handler().run(ctx, args);
            } finally {
                if (exclusive) {
                    commandLock.unlock();
                }
            }
        } catch (QmpException e) {
            sendReply(client, errorReply(e, id), holding);
            return;
        } catch (BlockException e) {
            sendReply(client, errorReply(QmpException.of(e), id), holding);
            return;
        } catch (RuntimeException e) {
            LOG.error("QMP command {} failed", request, e);
            String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            sendReply(client, errorReply(QmpException.generic(m), id), holding);
            return;
        }
        if (ctx.waitsBeforeReply()) {
            // the command waits for job transitions: they precede the reply
            if (holding) {
                releaseEvents(null);
                holding = false;
            }
            ctx.runBeforeReply();
        }
        sendReply(client, returnReply(result, id), holding);
        ctx.runAfterReply();
    }

    private void sendReply(QmpClient client, Map<String, Object> reply, boolean holding) {
        if (holding) {
            releaseEvents(() -> client.send(reply));
        } else {
            client.send(reply);
        }
    }

    /** {@code quit}: answered, then the launcher's shutdown runs on its own thread. */
    void quitAfterReply(QmpClient client) {
        client.flush(2000);
        Thread t = new Thread(() -> {
            try {
                onQuit.run();
            } catch (RuntimeException e) {
                LOG.error("shutdown after quit failed", e);
            }
        }, "qmp-quit");
        t.setDaemon(false);
        t.start();
    }

    /** Stops listening, disconnects every client and removes the socket files. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            subscription.close();
        } catch (Exception e) {
            LOG.debug("unsubscribe", e);
        }
        for (ServerSocketChannel l : listeners) {
            try {
                l.close();
            } catch (IOException e) {
                LOG.debug("closing listener", e);
            }
        }
        for (QmpClient c : new ArrayList<>(clients)) {
            c.flush(500);
            c.close();
        }
        for (Path p : socketFiles) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException e) {
                LOG.debug("removing {}", p, e);
            }
        }
        threads.shutdownNow();
    }

    static String packageString() {
        return Version.PACKAGE;
    }
}
