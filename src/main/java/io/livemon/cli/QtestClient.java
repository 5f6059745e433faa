package io.livemon.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;

/**
 * QEMU's {@code -qtest unix:path=PATH}: livemon connects to the qtest server (QEMU's iotests listen and wait for
 * the connection) and answers the qtest protocol, one command per line. Without a guest there is only the virtual
 * clock: {@code clock_step [ns]} and {@code clock_set ns} move it and answer {@code OK <ns>}, {@code endianness}
 * answers {@code OK little}; every other command gets QEMU's {@code FAIL Unknown command '...'}.
 */
final class QtestClient {
    /** The virtual clock in ns; only the qtest thread touches it. */
    private long clockNs;

    private QtestClient() {
    }

    /** Connects to {@code spec} ({@code unix:path=PATH} or {@code unix:PATH}) and serves it on a daemon thread. */
    static void connect(String spec) throws IOException {
        if (!spec.startsWith("unix:")) {
            throw new IllegalArgumentException("livemon connects qtest to unix: sockets only");
        }
        String rest = spec.substring(5);
        String path = rest;
        for (String kv : rest.split(",")) {
            if (kv.startsWith("path=")) {
                path = kv.substring(5);
            }
        }
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.connect(UnixDomainSocketAddress.of(path));
        } catch (IOException e) {
            ch.close();
            throw new IOException("Failed to connect to '" + path + "': " + e.getMessage(), e);
        }
        QtestClient q = new QtestClient();
        Thread t = new Thread(() -> q.serve(ch), "qtest");
        t.setDaemon(true);
        t.start();
    }

    private void serve(SocketChannel ch) {
        try (ch; BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch),
                StandardCharsets.UTF_8)); OutputStream out = Channels.newOutputStream(ch)) {
            String line;
            while ((line = in.readLine()) != null) {
                out.write((answer(line.strip()) + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
        } catch (IOException e) {
            // the qtest client went away: nothing more to answer
        }
    }

    /** The reply to one qtest command line. */
    String answer(String line) {
        String[] w = line.split("\\s+");
        try {
            switch (w[0]) {
                case "clock_step" -> {
                    clockNs += w.length > 1 ? Long.decode(w[1]) : 0;
                    return "OK " + clockNs;
                }
                case "clock_set" -> {
                    clockNs = Math.max(clockNs, Long.decode(w[1]));
                    return "OK " + clockNs;
                }
                case "endianness" -> {
                    return "OK little";
                }
                default -> {
                    return "FAIL Unknown command '" + w[0] + "'";
                }
            }
        } catch (RuntimeException e) {
            return "FAIL " + e.getMessage();
        }
    }
}
