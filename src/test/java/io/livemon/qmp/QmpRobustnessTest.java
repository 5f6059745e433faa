package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad input, misbehaving clients and load: the server and the other clients carry on. */
class QmpRobustnessTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QmpFixture.mkchain(dir, "64M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "base2.qcow2", "64M");
        QemuTools.qemuIo(dir, "base2.qcow2", "write -P 0x55 0 16M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base2.qcow2", "-F", "qcow2", "top2.qcow2");
        fx = new QmpFixture(dir, new QmpServer.Limits(1 << 20, 200, 256 * 1024), QmpFixture.DRIVE_E,
                "file=top2.qcow2,if=none,id=second");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void tenMegabyteLineIsRejectedAndTheClientCarriesOn() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            String big = "{\"execute\": \"query-status\", \"id\": \"" + "x".repeat(10 * 1024 * 1024) + "\"}\n";
            c.send(big);
            assertThat(c.next()).isEqualTo(generic("JSON token size limit exceeded"));
            assertThat(c.exchange("{\"execute\": \"query-name\", \"id\": 1}")).containsExactly("{\"return\": {}, \"id\": 1}");
            c.send("[".repeat(2000) + "\n");
            assertThat(c.next()).isEqualTo(generic("JSON nesting depth limit exceeded"));
            c.send("]".repeat(2000) + "\n");
            assertThat(c.exchange("{\"execute\": \"query-name\", \"id\": 2}")).containsExactly("{\"return\": {}, \"id\": 2}");
            c.send("{\"execute\": \"query-status\", \"id\": \"unterminated\n");
            assertThat(c.next()).startsWith("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray");
            assertThat(c.exchange("{\"execute\": \"query-name\", \"id\": 3}")).containsExactly("{\"return\": {}, \"id\": 3}");
        }
    }

    @Test
    void clientDisconnectingMidCommandLeavesTheServerServing() throws Exception {
        QmpTestClient a = fx.negotiated();
        a.send("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", \"speed\": 1048576}}\n"
                + "{\"execute\": \"query-named-block-nodes\"}\n{\"execute\": \"query-bl");
        a.close();
        try (QmpTestClient b = fx.negotiated()) {
            Awaitility.await().atMost(5, TimeUnit.SECONDS).until(() -> !fx.graph.jobInfos().isEmpty());
            assertThat(b.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"virtio0\"}}"))
                    .endsWith("{\"return\": {}}");
            assertThat(b.exchange("{\"execute\": \"query-block-jobs\"}")).containsExactly("{\"return\": []}");
        }
        Awaitility.await().atMost(5, TimeUnit.SECONDS).until(() -> fx.server.clientCount() == 0);
    }

    @Test
    void clientThatNeverReadsIsDisconnected() throws Exception {
        try (SocketChannel raw = SocketChannel.open(StandardProtocolFamily.UNIX);
             QmpTestClient good = fx.negotiated()) {
            raw.connect(UnixDomainSocketAddress.of(fx.socket));
            String cmd = "{\"execute\": \"qmp_capabilities\"}\n"
                    + "{\"execute\": \"query-named-block-nodes\"}\n".repeat(2000);
            ByteBuffer b = ByteBuffer.wrap(cmd.getBytes(StandardCharsets.UTF_8));
            raw.configureBlocking(false);
            long deadline = System.currentTimeMillis() + 20_000;
            // keep writing (never reading) until the server hangs up
            while (System.currentTimeMillis() < deadline) {
                try {
                    if (!b.hasRemaining()) {
                        b.rewind();
                    }
                    raw.write(b);
                } catch (java.io.IOException e) {
                    break;
                }
                if (fx.server.clientCount() == 1) {
                    break;
                }
                Thread.sleep(1);
            }
            Awaitility.await().atMost(10, TimeUnit.SECONDS).until(() -> fx.server.clientCount() == 1);
            assertThat(good.exchange("{\"execute\": \"query-block-jobs\"}")).containsExactly("{\"return\": []}");
        }
    }

    @Test
    void fiftyClientsPollWhileTwoStreamsRun() throws Exception {
        int n = 50;
        List<QmpTestClient> clients = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            clients.add(fx.negotiated());
        }
        QmpTestClient ctl = fx.negotiated();
        // Slow enough that both streams are still running when the 3 s of polling end (they are cancelled after).
        ctl.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", \"speed\": 1048576}}");
        ctl.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"second\", \"speed\": 524288}}");
        ConcurrentLinkedQueue<Long> latencies = new ConcurrentLinkedQueue<>();
        ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
        AtomicLong polls = new AtomicLong();
        long end = System.currentTimeMillis() + 3000;
        List<Thread> threads = new ArrayList<>();
        for (QmpTestClient c : clients) {
            Thread t = new Thread(() -> {
                try {
                    while (System.currentTimeMillis() < end) {
                        long t0 = System.nanoTime();
                        List<String> got = c.exchange("{\"execute\": \"query-block-jobs\"}");
                        latencies.add(System.nanoTime() - t0);
                        polls.incrementAndGet();
                        String reply = got.get(got.size() - 1);
                        if (!reply.startsWith("{\"return\": [")) {
                            errors.add(reply);
                        }
                    }
                } catch (Exception | AssertionError e) {
                    errors.add(e.toString());
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join();
        }
        List<Long> sorted = new ArrayList<>(latencies);
        Collections.sort(sorted);
        double p50 = sorted.get(sorted.size() / 2) / 1e6;
        double p99 = sorted.get((int) Math.min(sorted.size() - 1, Math.ceil(sorted.size() * 0.99) - 1)) / 1e6;
        System.out.printf("QMP load: %d clients, %d query-block-jobs in 3 s, two streams running: "
                + "p50 %.2f ms, p99 %.2f ms%n", n, polls.get(), p50, p99);
        assertThat(errors).isEmpty();
        assertThat(polls.get()).isGreaterThan(n);
        assertThat(fx.graph.jobInfos()).hasSize(2);
        clients.forEach(QmpTestClient::close);
        ctl.exchange("{\"execute\": \"job-cancel\", \"arguments\": {\"id\": \"virtio0\"}}");
        ctl.exchange("{\"execute\": \"job-cancel\", \"arguments\": {\"id\": \"second\"}}");
    }
}
