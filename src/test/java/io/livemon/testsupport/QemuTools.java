package io.livemon.testsupport;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs qemu-img / qemu-io from tests: the test-support package every test package uses.
 *
 * <pre>
 *   QemuTools.Result r = QemuTools.run(dir, "qemu-img", "check", "a.qcow2");   // any exit code
 *   QemuTools.qemuImg(dir, "create", "-f", "qcow2", "a.qcow2", "64M");       // throws unless exit 0
 *   QemuTools.qemuIo(dir, "a.qcow2", "write -P 0x11 0 64k", "write -z 1M 64k")   (qcow2); qemuIoFmt(dir, "raw", ...);
 * </pre>
 */
public final class QemuTools {
    // check, compare, convert and info pass -U (force share): crash tests inspect images whose livemon objects were
    // dropped without close, which still hold QEMU's image locks in this JVM (ImageLocksTest covers the locking).
    /** The outcome of one command. */
    public record Result(List<String> command, int exitCode, String stdout, String stderr) {
        public boolean ok() {
            return exitCode == 0;
        }

        /** Throws an AssertionError with the whole output unless the exit code is 0. */
        public Result orThrow() {
            if (exitCode != 0) {
                throw new AssertionError(describe());
            }
            return this;
        }

        public String describe() {
            return String.join(" ", command) + " -> exit " + exitCode + "\nstdout:\n" + stdout + "\nstderr:\n" + stderr;
        }
    }

    private static final long TIMEOUT_SECONDS = 120;

    private QemuTools() {
    }

    /** Whether qemu-img is installed. */
    public static boolean available() {
        try {
            return run(Path.of("."), "qemu-img", "--version").ok();
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** Runs a command in {@code dir}; returns whatever the exit code. */
    public static Result run(Path dir, String... command) {
        List<String> cmd = Arrays.asList(command);
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile());
            Process p = pb.start();
            p.getOutputStream().close();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            Thread t1 = pump(p.getInputStream(), out);
            Thread t2 = pump(p.getErrorStream(), err);
            if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError(String.join(" ", cmd) + " timed out");
            }
            t1.join();
            t2.join();
            return new Result(cmd, p.exitValue(), out.toString(StandardCharsets.UTF_8),
                    err.toString(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    private static Thread pump(InputStream in, ByteArrayOutputStream to) {
        Thread t = new Thread(() -> {
            try (in) {
                in.transferTo(to);
            } catch (IOException ignored) {
                // process gone
            }
        });
        t.setDaemon(true);
        t.start();
        return t;
    }

    /** Runs {@code qemu-img args...} in dir; throws with the output unless it exits 0. */
    public static Result qemuImg(Path dir, String... args) {
        return run(dir, prepend("qemu-img", args)).orThrow();
    }

    /** Runs {@code qemu-io -f fmt -c cmd1 -c cmd2 ... file}; throws unless it exits 0 and prints no error. */
    public static Result qemuIoFmt(Path dir, String fmt, String file, String... cmds) {
        List<String> c = new ArrayList<>(List.of("qemu-io", "-f", fmt));
        for (String s : cmds) {
            c.add("-c");
            c.add(s);
        }
        c.add(file);
        Result r = run(dir, c.toArray(new String[0])).orThrow();
        if (r.stdout().contains("error") || r.stderr().contains("error") || r.stdout().contains("failed")) {
            throw new AssertionError(r.describe());
        }
        return r;
    }

    /** qemu-io on a qcow2 image. */
    public static Result qemuIo(Path dir, String file, String... cmds) {
        return qemuIoFmt(dir, "qcow2", file, cmds);
    }

    /** {@code qemu-img check}: returns the result (exit 0 clean, 2 corrupt, 3 leaks only). */
    public static Result check(Path dir, String file) {
        return run(dir, "qemu-img", "check", "-U", file);
    }

    /** Asserts qemu-img check exits 0. */
    public static void assertClean(Path dir, String file) {
        Result r = check(dir, file);
        if (r.exitCode() != 0) {
            throw new AssertionError("qemu-img check not clean: " + r.describe());
        }
    }

    /** {@code qemu-img compare a b}: exit 0 = identical content. */
    public static Result compare(Path dir, String a, String b) {
        return run(dir, "qemu-img", "compare", "-U", a, b);
    }

    /** Converts an image (with its chain) to a raw file. */
    public static void toRaw(Path dir, String image, String raw) {
        qemuImg(dir, "convert", "-U", "-O", "raw", image, raw);
    }

    /** {@code qemu-img info --output=json} as a string. */
    public static String infoJson(Path dir, String file) {
        return qemuImg(dir, "info", "-U", "--output=json", file).stdout();
    }

    private static String[] prepend(String first, String[] rest) {
        String[] r = new String[rest.length + 1];
        r[0] = first;
        System.arraycopy(rest, 0, r, 1, rest.length);
        return r;
    }
}
