package io.livemon.qmp;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One QMP connection. Its reader thread parses input and runs each command in turn; everything it is sent (replies
 * and events alike) goes through one bounded queue drained by its writer thread, so events raised inside a command
 * precede that command's reply, and a client that stops reading is disconnected instead of making livemon's memory
 * grow.
 */
final class QmpClient {
    private static final Logger LOG = LoggerFactory.getLogger(QmpClient.class);
    private static final String POISON = "\u0000close";

    private final QmpServer server;
    /** A socket, or an inherited descriptor / standard streams ({@code fd=N}, {@code -qmp stdio}). */
    private final java.nio.channels.ByteChannel channel;
    private final String peer;
    private final BlockingQueue<String> out;
    private final long maxQueuedBytes;
    private final AtomicLong queuedBytes = new AtomicLong();
    /** Messages queued but not yet written. */
    private final AtomicLong pending = new AtomicLong();
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile boolean negotiated;
    private volatile boolean oob;

    QmpClient(QmpServer server, java.nio.channels.ByteChannel channel, String peer, int maxQueuedMessages,
              long maxQueuedBytes) {
        this.server = server;
        this.channel = channel;
        this.peer = peer;
        this.out = new ArrayBlockingQueue<>(maxQueuedMessages + 1);
        this.maxQueuedBytes = maxQueuedBytes;
    }

    boolean negotiated() {
        return negotiated;
    }

    void setNegotiated(boolean oobEnabled) {
        this.oob = oobEnabled;
        this.negotiated = true;
    }

    boolean oobEnabled() {
        return oob;
    }

    String peer() {
        return peer;
    }

    /** Queues one message; a client whose queue is full is disconnected. */
    void send(Map<String, Object> message) {
        if (closed.get()) {
            return;
        }
        String line = Json.write(message) + "\r\n";
        long bytes = queuedBytes.addAndGet(line.length());
        pending.incrementAndGet();
        if (bytes > maxQueuedBytes || !out.offer(line)) {
            pending.decrementAndGet();
            queuedBytes.addAndGet(-line.length());
            LOG.warn("QMP client {} is not reading its replies and events; disconnecting it", peer);
            close();
        }
    }

    /** Waits until everything queued so far is written (or the client is gone). */
    void flush(long timeoutMillis) {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        while (pending.get() > 0 && !closed.get() && System.currentTimeMillis() < deadline) {
            try {
                Thread.sleep(2);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    void readLoop() {
        JsonStreamParser parser = new JsonStreamParser(new JsonStreamParser.Listener() {
            @Override
            public void value(Object value) {
                server.dispatch(QmpClient.this, value);
            }

            @Override
            public void error(String desc) {
                send(QmpServer.errorReply(QmpException.generic(desc), null));
            }
        }, server.maxMessageChars());
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPLACE)
                .onUnmappableCharacter(CodingErrorAction.REPLACE);
        ByteBuffer in = ByteBuffer.allocate(8192);
        CharBuffer chars = CharBuffer.allocate(8192);
        try {
            while (!closed.get()) {
                int n = channel.read(in);
                if (n < 0) {
                    break;
                }
                in.flip();
                decoder.decode(in, chars, false);
                in.compact();
                chars.flip();
                while (chars.hasRemaining() && !closed.get()) {
                    parser.feed(chars.get());
                }
                chars.clear();
            }
        } catch (IOException e) {
            LOG.debug("QMP client {} read: {}", peer, e.toString());
        } catch (RuntimeException e) {
            LOG.warn("QMP client {} failed", peer, e);
        } finally {
            close();
        }
    }

    void writeLoop() {
        try {
            while (true) {
                String line = out.take();
                if (line == POISON) {
                    break;
                }
                ByteBuffer b = ByteBuffer.wrap(line.getBytes(StandardCharsets.UTF_8));
                while (b.hasRemaining()) {
                    channel.write(b);
                }
                queuedBytes.addAndGet(-line.length());
                pending.decrementAndGet();
            }
        } catch (IOException e) {
            LOG.debug("QMP client {} write: {}", peer, e.toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            close();
        }
    }

    void close() {
        if (closed.compareAndSet(false, true)) {
            out.clear();
            out.offer(POISON);
            try {
                channel.close();
            } catch (IOException e) {
                LOG.debug("closing QMP client {}", peer, e);
            }
            server.clientGone(this);
            LOG.info("QMP client {} disconnected", peer);
        }
    }

    boolean isClosed() {
        return closed.get();
    }

    /** For tests waiting on a poll loop. */
    boolean awaitClosed(long timeout, TimeUnit unit) throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        while (!closed.get() && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        return closed.get();
    }
}
