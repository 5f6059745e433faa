package io.livemon.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** livemon as a child JVM on the test class path, fed a string on stdin, as a script or a user at a pipe runs it. */
final class LivemonProcess {
    /** In the input, this line pauses feeding for two seconds (a cold child JVM needs that long to get going). */
    static final String SLEEP = "@sleep\n";

    record Run(int exit, String out, String err) {
    }

    private LivemonProcess() {
    }

    static Run run(Path dir, String stdin, String... args) throws Exception {
        return run(dir, java.util.Map.of(), false, stdin, args);
    }

    static List<String> javaCommand(Path dir, String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "-Djava.io.tmpdir=" + dir.resolve("tmp"),
                "-Dorg.slf4j.simpleLogger.logFile=" + dir.resolve("livemon.log"), "io.livemon.cli.Main"));
        cmd.addAll(List.of(args));
        return cmd;
    }

    /**
     * livemon with {@code env} added to its environment; with {@code terminal}, inside a pseudo-terminal made by
     * util-linux's {@code script}, so that it runs its interactive monitor as for a person (keystrokes from stdin).
     */
    static Run run(Path dir, java.util.Map<String, String> env, boolean terminal, String stdin, String... args)
            throws Exception {
        java.nio.file.Files.createDirectories(dir.resolve("tmp"));
        List<String> cmd = javaCommand(dir, args);
        if (terminal) {
            StringBuilder line = new StringBuilder();
            for (String a : cmd) {
                line.append('\'').append(a.replace("'", "'\\''")).append("' ");
            }
            cmd = List.of("script", "-qefc", line.toString(), "/dev/null");
        }
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile());
        pb.environment().putAll(env);
        Process p = pb.start();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread t1 = pump(p.getInputStream(), out);
        Thread t2 = pump(p.getErrorStream(), err);
        try (OutputStream in = p.getOutputStream()) {
            String[] parts = stdin.split(SLEEP, -1);
            for (int i = 0; i < parts.length; i++) {
                if (i > 0) {
                    in.flush();
                    Thread.sleep(2000);
                }
                in.write(parts[i].getBytes(StandardCharsets.UTF_8));
            }
        } catch (java.io.IOException e) {
            // livemon exited before reading all its input (a start-up error): what it printed says why
        }
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("livemon exits").isTrue();
        t1.join();
        t2.join();
        return new Run(p.exitValue(), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static Thread pump(InputStream in, ByteArrayOutputStream to) {
        Thread t = new Thread(() -> {
            try (in) {
                in.transferTo(to);
            } catch (Exception ignored) {
                // process gone
            }
        });
        t.start();
        return t;
    }
}
