package io.livemon.cli;

import io.livemon.block.BlockException;
import io.livemon.block.BlockGraph;
import io.livemon.block.DriveOptions;
import io.livemon.monitor.CommandTable;
import io.livemon.monitor.Banner;
import io.livemon.monitor.HmpSession;
import io.livemon.monitor.PipeMonitor;
import io.livemon.monitor.ScriptReplay;
import io.livemon.monitor.TerminalMonitor;
import io.livemon.qmp.QmpEndpoint;
import io.livemon.qmp.QmpServer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Starts livemon from parsed options: opens the drives (or the demo chain), then runs the monitor. */
final class Launcher {
    private static final Logger LOG = LoggerFactory.getLogger(Launcher.class);

    private final Main options;

    Launcher(Main options) {
        this.options = options;
    }

    int run() throws IOException {
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true,
                StandardCharsets.UTF_8);
        Integer probed = Probes.answer(options, out);
        if (probed != null) {
            return probed;
        }
        Path cwd = Paths.get("").toAbsolutePath();
        // the demo only when livemon is given none of QEMU's options (livemon's own, such as --keep-demo, may be)
        boolean demo = !options.hasQemuOptions();
        if (demo) {
            cwd = Files.createTempDirectory("livemon-demo-");
            if (!options.keepDemo) {
                // a hook, not a finally: QMP quit and SIGTERM end the JVM without unwinding this method
                Path demoDir = cwd;
                Runtime.getRuntime().addShutdownHook(new Thread(() -> removeDemo(demoDir), "demo-cleanup"));
            }
        }
        BlockGraph graph = new BlockGraph(cwd);
        QmpServer qmp = null;
        try {
            if (demo) {
                String top = DemoChain.create(cwd);
                openDemo(graph, top);
                out.println("livemon demo: created the chain [A] <- [B] <- [C] <- [D] <- [E] in " + cwd);
                out.println("  file-E.img is attached as virtio0; relative file names resolve in that directory.");
                out.println("  Try: info block, then block_stream virtio0 file-A.img, then info block-jobs.");
                out.println(options.keepDemo ? "  The directory is kept when livemon ends."
                        : "  The directory is removed when livemon ends (--keep-demo keeps it).");
            } else {
                for (String b : options.blockdevs) {
                    try {
                        graph.addBlockdev(BlockdevArg.parse(b));
                    } catch (BlockException e) {
                        System.err.println("livemon: -blockdev " + b + ": " + e.getMessage());
                        graph.close();
                        return 1;
                    }
                }
                for (String d : options.drives) {
                    try {
                        DriveOptions o = DriveOptions.parse(d);
                        if ("".equals(o.backingReference())) {
                            // QEMU 7.2 accepts backing= (no backing) with this warning
                            System.err.println("livemon: -drive " + d + ": warning: Use of \"backing\": \"\" is "
                                    + "deprecated; use \"backing\": null instead");
                        }
                        graph.addDrive(o);
                    } catch (BlockException e) {
                        System.err.println("livemon: -drive " + d + ": " + e.getMessage());
                        graph.close();
                        return 1;
                    }
                }
            }
            String deviceError = GuestDevices.attach(graph, options.devices);
            if (deviceError != null) {
                System.err.println("livemon: " + deviceError);
                graph.close();
                return 1;
            }
            HmpSession session = new HmpSession(graph, new CommandTable(), out, out, options.startPaused);
            qmp = startQmp(graph, session, out);
            if (qmp == null && (!options.qmp.isEmpty() || !options.mons.isEmpty())) {
                graph.close();
                return 1;
            }
            if (options.qtest != null) {
                try {
                    QtestClient.connect(options.qtest);
                } catch (IOException | IllegalArgumentException e) {
                    System.err.println("livemon: -qtest " + options.qtest + ": " + e.getMessage());
                    graph.close();
                    return 1;
                }
            }
            if (!options.humanMonitorOnStdio()) {
                // no human monitor: livemon runs until QMP's quit (or a signal), as QEMU does
                new java.util.concurrent.CountDownLatch(1).await();
            }
            boolean terminal = System.console() != null;
            if (options.script != null && terminal) {
                out.println(Banner.text());
            }
            if (options.script != null) {
                int rc = ScriptReplay.replay(session, options.script, out, options.strict);
                if (rc != 0 || session.quitRequested() || !terminal) {
                    return rc;
                }
            }
            if (terminal) {
                Path history = options.history != null ? options.history
                        : UserHome.dir().resolve(".livemon_history");
                // a replayed script already printed the banner above its output
                return new TerminalMonitor(session).completionMenu(options.completionMenu)
                        .run(history, options.script == null);
            }
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            int rc = new PipeMonitor(session, in, out).run(options.events, options.strict);
            if (qmp != null && !session.quitRequested() && rc == 0) {
                // With QMP sockets open, end of input does not end livemon: QMP's quit does.
                new java.util.concurrent.CountDownLatch(1).await();
            }
            return rc;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        } finally {
            LOG.info("shutting down");
            if (qmp != null) {
                qmp.close();
            }
            graph.close();
        }
    }

    /** The demo's own directory goes when livemon ends (--keep-demo keeps it); nothing else is touched. */
    private static void removeDemo(Path dir) {
        try (java.util.stream.Stream<Path> s = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) s.sorted(java.util.Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            LOG.warn("could not remove the demo directory {}: {}", dir, e.toString());
        }
    }

    /** Starts the QMP server on every -qmp / -mon endpoint; null if there is none or one fails. */
    private QmpServer startQmp(BlockGraph graph, HmpSession session, PrintStream out) {
        java.util.List<QmpEndpoint> endpoints;
        try {
            endpoints = QmpEndpoint.parse(options.qmp, options.chardevs, options.mons);
        } catch (IllegalArgumentException e) {
            System.err.println("livemon: " + e.getMessage());
            return null;
        }
        if (endpoints.isEmpty()) {
            return null;
        }
        QmpServer[] self = new QmpServer[1];
        // QMP quit: stop serving, close the graph (images left valid), exit.
        self[0] = new QmpServer(graph, session, out, () -> {
            LOG.info("quit over QMP");
            self[0].close();
            graph.close();
            out.flush();
            System.exit(0);
        }, options.name);
        for (QmpEndpoint e : endpoints) {
            try {
                e.listen(self[0]);
            } catch (IOException ex) {
                System.err.println("livemon: -qmp " + e + ": " + ex.getMessage());
                self[0].close();
                return null;
            }
        }
        return self[0];
    }

    private static void openDemo(BlockGraph graph, String top) throws IOException {
        try {
            graph.addDrive(DriveOptions.parse("file=" + top + ",if=none,id=virtio0,node-name=node-E,"
                    + "backing.node-name=node-D,backing.backing.node-name=node-C,"
                    + "backing.backing.backing.node-name=node-B,backing.backing.backing.backing.node-name=node-A"));
        } catch (BlockException e) {
            throw new IOException(e.getMessage(), e);
        }
    }
}
