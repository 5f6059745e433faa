package io.livemon.bench;

import io.livemon.image.Image;
import io.livemon.image.Images;
import io.livemon.image.Qcow2CreateOptions;
import io.livemon.image.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Benchmark driver for the image engine (run by {@code bench/engine.sh}, not by the test suite).
 *
 * <pre>
 *   EngineBench read  DIR TOP [REQUEST_BYTES]          read the whole guest-visible content of TOP's chain into one
 *                                                      direct ByteBuffer (Image.read(long, ByteBuffer))
 *   EngineBench read-heap DIR TOP [REQUEST_BYTES]      the same into a byte[] (Image.read(long, byte[], ...))
 *   EngineBench copyup DIR TOP SYNC CHUNK              the stream's copy loop (copy-up of the chain into TOP)
 *   EngineBench write DIR OVERLAY BACKING [REQUEST_BYTES] create OVERLAY over BACKING, fill it, flush
 * </pre>
 *
 * Prints one line {@code bytes=N seconds=S MBps=R} (MB = 10^6 bytes) on stdout. Data read is discarded (folded into a
 * checksum so the JIT cannot drop the reads).
 */
public final class EngineBench {
    private EngineBench() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: EngineBench read DIR TOP [REQ] | write DIR OVERLAY BACKING [REQ]");
            System.exit(2);
        }
        Path dir = Path.of(args[1]);
        switch (args[0]) {
            case "read" -> read(dir, args[2], args.length > 3 ? Integer.parseInt(args[3]) : 2 << 20);
            case "read-heap" -> readHeap(dir, args[2], args.length > 3 ? Integer.parseInt(args[3]) : 2 << 20);
            case "write" -> write(dir, args[2], args[3], args.length > 4 ? Integer.parseInt(args[4]) : 2 << 20);
            case "copyup" -> copyUp(dir, args[2], Boolean.parseBoolean(args[3]), Integer.parseInt(args[4]));
            default -> {
                System.err.println("unknown mode " + args[0]);
                System.exit(2);
            }
        }
    }

    private static void read(Path dir, String top, int req) throws IOException {
        Image img = Images.openChain(dir, top, null, true);
        try {
            long size = img.size();
            ByteBuffer buf = ByteBuffer.allocateDirect(req);
            long sum = 0;
            long t0 = System.nanoTime();
            for (long off = 0; off < size; off += req) {
                int n = (int) Math.min(req, size - off);
                buf.clear().limit(n);
                img.read(off, buf);
                sum += buf.get(0) + buf.get(n - 1);
            }
            long t1 = System.nanoTime();
            report(size, t1 - t0, "checksum=" + sum);
        } finally {
            Images.closeChain(img);
        }
    }

    private static void readHeap(Path dir, String top, int req) throws IOException {
        Image img = Images.openChain(dir, top, null, true);
        try {
            long size = img.size();
            byte[] buf = new byte[req];
            long sum = 0;
            long t0 = System.nanoTime();
            for (long off = 0; off < size; off += req) {
                int n = (int) Math.min(req, size - off);
                img.read(off, buf, 0, n);
                sum += buf[0] + buf[n - 1];
            }
            long t1 = System.nanoTime();
            report(size, t1 - t0, "checksum=" + sum);
        } finally {
            Images.closeChain(img);
        }
    }

    private static void write(Path dir, String overlay, String backing, int req) throws IOException {
        Image b = Images.openChain(dir, backing, null, true);
        long size = b.size();
        Images.closeChain(b);
        Qcow2CreateOptions o = Qcow2CreateOptions.withBacking(backing, "qcow2");
        Images.createQcow2(dir, overlay, size, o);
        Image img = Images.openChain(dir, overlay, "qcow2", false);
        try {
            byte[] buf = new byte[req];
            Arrays.fill(buf, (byte) 0x5a);
            long t0 = System.nanoTime();
            for (long off = 0; off < size; off += req) {
                int n = (int) Math.min(req, size - off);
                buf[0] = (byte) off;
                img.write(off, buf, 0, n);
            }
            img.flush();
            long t1 = System.nanoTime();
            report(size, t1 - t0, "");
        } finally {
            Images.closeChain(img);
        }
    }

    /** The stream job's copy loop without the job machinery: copy-up of the whole chain into TOP, CHUNK at a time. */
    private static void copyUp(Path dir, String top, boolean syncMetadata, int chunk) throws IOException {
        Qcow2Image.Options d = Qcow2Image.Options.defaults();
        Image img = Images.openChain(dir, top, null, false,
                new Qcow2Image.Options(d.l2CacheBytes(), d.refcountCacheBytes(), syncMetadata));
        try {
            long size = img.size();
            long copied = 0;
            ByteBuffer buf = ByteBuffer.allocateDirect(chunk);
            long t0 = System.nanoTime();
            for (long off = 0; off < size; off += chunk) {
                copied += img.copyUpFromBacking(off, Math.min(chunk, size - off), null, buf);
            }
            long t1 = System.nanoTime();
            report(copied, t1 - t0, "");
        } finally {
            Images.closeChain(img);
        }
    }

    private static void report(long bytes, long nanos, String extra) {
        double s = nanos / 1e9;
        System.out.printf("bytes=%d seconds=%.3f MBps=%.1f %s%n", bytes, s, bytes / s / 1e6, extra);
    }
}
