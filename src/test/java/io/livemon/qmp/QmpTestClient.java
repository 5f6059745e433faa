package io.livemon.qmp;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** A raw QMP client for tests: sends lines, collects received lines (CRLF checked and stripped). */
final class QmpTestClient implements AutoCloseable {
    static final String EOF = "[connection closed]";
    private final SocketChannel ch;
    private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
    private final Thread reader;

    private QmpTestClient(SocketChannel ch) {
        this.ch = ch;
        reader = new Thread(this::readLoop, "qmp-test-client");
        reader.setDaemon(true);
        reader.start();
    }

    static QmpTestClient unix(Path socket) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(socket));
        return new QmpTestClient(ch);
    }

    static QmpTestClient tcp(java.net.InetSocketAddress a) throws IOException {
        return new QmpTestClient(SocketChannel.open(a));
    }

    private void readLoop() {
        ByteBuffer b = ByteBuffer.allocate(1 << 16);
        StringBuilder cur = new StringBuilder();
        java.io.ByteArrayOutputStream line = new java.io.ByteArrayOutputStream();
        try {
            while (ch.read(b) >= 0) {
                b.flip();
                while (b.hasRemaining()) {
                    byte x = b.get();
                    if (x == '\n') {
                        String s = line.toString(StandardCharsets.UTF_8);
                        line.reset();
                        if (!s.endsWith("\r")) {
                            lines.add("[line without CRLF] " + s);
                        } else {
                            lines.add(s.substring(0, s.length() - 1));
                        }
                    } else {
                        line.write(x);
                    }
                }
                b.clear();
            }
        } catch (IOException e) {
            // closed
        }
        lines.add(EOF);
    }

    void send(String text) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    /** The next line, waiting up to 10 s. */
    String next() throws InterruptedException {
        String s = lines.poll(10, TimeUnit.SECONDS);
        if (s == null) {
            throw new AssertionError("no QMP message within 10 s");
        }
        return s;
    }

    String poll(long millis) throws InterruptedException {
        return lines.poll(millis, TimeUnit.MILLISECONDS);
    }

    /** Sends one command line and returns every line received up to and including its reply. */
    List<String> exchange(String command) throws Exception {
        send(command + "\n");
        return untilReply();
    }

    List<String> untilReply() throws InterruptedException {
        List<String> got = new ArrayList<>();
        while (true) {
            String s = next();
            got.add(mask(s));
            if (s.startsWith("{\"return\"") || s.startsWith("{\"error\"") || s.startsWith("{\"id\"")
                    || s.equals(EOF)) {
                return got;
            }
        }
    }

    /** Lines until one containing {@code marker} (inclusive). */
    List<String> until(String marker) throws InterruptedException {
        List<String> got = new ArrayList<>();
        while (true) {
            String s = mask(next());
            got.add(s);
            if (s.contains(marker) || s.equals(EOF)) {
                return got;
            }
        }
    }

    /** Timestamps replaced by a fixed one, as the transcripts differ only there. */
    static String mask(String s) {
        return s.replaceAll("\"seconds\": \\d+, \"microseconds\": \\d+", "\"seconds\": S, \"microseconds\": U");
    }

    /** Masks a transcript line the same way. */
    static String ev(String transcriptLine) {
        return mask(transcriptLine.startsWith("<- ") ? transcriptLine.substring(3) : transcriptLine);
    }

    @Override
    public void close() {
        try {
            ch.close();
        } catch (IOException e) {
            // already closed
        }
    }

    boolean isOpen() {
        return ch.isOpen();
    }
}
