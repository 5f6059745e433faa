package io.livemon.qmp;

import io.livemon.block.BlockGraph;
import io.livemon.block.DriveOptions;
import io.livemon.testsupport.QemuTools;
import io.livemon.monitor.CommandTable;
import io.livemon.monitor.HmpSession;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/** A livemon with a QMP server on a unix socket, over the transcripts' seed chain (lib.sh's mkchain). */
final class QmpFixture implements AutoCloseable {
    static final String DRIVE_E = "file=file-E.img,if=none,id=virtio0,node-name=node-E,backing.node-name=node-D,"
            + "backing.backing.node-name=node-C,backing.backing.backing.node-name=node-B,"
            + "backing.backing.backing.backing.node-name=node-A";

    final Path dir;
    final BlockGraph graph;
    final HmpSession hmp;
    final ByteArrayOutputStream hmpOut = new ByteArrayOutputStream();
    final QmpServer server;
    final Path socket;
    final AtomicInteger quits = new AtomicInteger();
    private final List<QmpTestClient> clients = new ArrayList<>();

    QmpFixture(Path dir, QmpServer.Limits limits, String... drives) throws Exception {
        this.dir = dir;
        graph = new BlockGraph(dir);
        for (String d : drives) {
            graph.addDrive(DriveOptions.parse(d));
        }
        PrintStream out = new PrintStream(hmpOut, true);
        hmp = new HmpSession(graph, new CommandTable(), out, out, false);
        server = new QmpServer(graph, hmp, new PrintStream(new ByteArrayOutputStream(), true),
                quits::incrementAndGet, null, limits);
        socket = server.listenUnix(dir.resolve("qmp.sock"));
    }

    static QmpFixture seed(Path dir) throws Exception {
        return seed(dir, "64M");
    }

    /** The seed chain of {@code size} (qemu-img size syntax) with E attached as virtio0, QMP served. */
    static QmpFixture seed(Path dir, String size) throws Exception {
        mkchain(dir, size);
        return new QmpFixture(dir, QmpServer.Limits.DEFAULT, DRIVE_E);
    }

    /** lib.sh's mkchain: A 0xaa@0 and 0xa1@8M..16M, B 0xbb@1M, C 0xcc@2M, D 0xdd@3M, E 0xee@4M. */
    static void mkchain(Path dir, String size) {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "file-A.img", size);
        String prev = "A";
        for (String n : new String[] {"B", "C", "D", "E"}) {
            QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "file-" + prev + ".img", "-F", "qcow2",
                    "file-" + n + ".img");
            prev = n;
        }
        QemuTools.qemuIo(dir, "file-A.img", "write -P 0xaa 0 1M", "write -P 0xa1 8M 8M");
        QemuTools.qemuIo(dir, "file-B.img", "write -P 0xbb 1M 1M");
        QemuTools.qemuIo(dir, "file-C.img", "write -P 0xcc 2M 1M");
        QemuTools.qemuIo(dir, "file-D.img", "write -P 0xdd 3M 1M");
        QemuTools.qemuIo(dir, "file-E.img", "write -P 0xee 4M 1M");
    }

    QmpTestClient connect() throws Exception {
        QmpTestClient c = QmpTestClient.unix(socket);
        synchronized (clients) {
            clients.add(c);
        }
        return c;
    }

    /** Connected and negotiated; the greeting and the negotiation reply consumed. */
    QmpTestClient negotiated() throws Exception {
        QmpTestClient c = connect();
        c.next();
        c.exchange("{\"execute\": \"qmp_capabilities\"}");
        return c;
    }

    @Override
    public void close() {
        synchronized (clients) {
            clients.forEach(QmpTestClient::close);
        }
        server.close();
        graph.close();
    }
}
