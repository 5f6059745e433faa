package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Image creation never leaves a half-written file where the user's file was: a creation that fails part-way, or a
 * process killed (SIGKILL) during creation, leaves either the old file, byte for byte, or a complete new image that
 * {@code qemu-img check} accepts.
 */
class ImageCreationTest {
    @TempDir
    Path dir;

    private byte[] oldFile() throws IOException {
        byte[] old = new byte[200_000];
        new Random(7).nextBytes(old);
        Files.write(dir.resolve("t.img"), old);
        return old;
    }

    private List<String> leftovers() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.contains(".livemon-")).toList();
        }
    }

    @Test
    void aCreationThatFailsPartWayLeavesTheOldFileAndNoTemporary() throws Exception {
        byte[] old = oldFile();
        assertThatThrownBy(() -> ImageCreation.create(dir, "t.img", "qcow2", (file, name) -> {
            Files.write(file, new byte[4096]);
            throw new IOException("No space left on device");
        })).hasMessage("No space left on device");
        assertThat(Files.readAllBytes(dir.resolve("t.img"))).isEqualTo(old);
        assertThat(leftovers()).isEmpty();
    }

    @Test
    void aMissingDirectoryIsQemusError() {
        assertThatThrownBy(() -> Images.createQcow2(dir, "nodir/x.img", 1 << 20, null))
                .hasMessage("Could not create 'nodir/x.img': No such file or directory");
    }

    /** Child: creates t.img again and again until killed; prints "started" first. */
    public static void main(String[] args) throws Exception {
        Path d = Path.of(args[0]);
        Qcow2CreateOptions o = Qcow2CreateOptions.defaults().withClusterSize(512);
        System.out.println("started");
        System.out.flush();
        for (long i = 0; ; i++) {
            // 512-byte clusters and 16 GiB: a 4 MiB L1 table, so that a kill lands inside a creation most times
            Images.createQcow2(d, "t.img", (16L << 30) + (i % 7) * 512, o);
        }
    }

    @Test
    void aKilledCreationLeavesTheOldFileOrACompleteImage() throws Exception {
        byte[] old = oldFile();
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Random delays = new Random(42);
        int sawOld = 0;
        int sawNew = 0;
        for (int round = 0; round < 8; round++) {
            Path log = dir.resolve("child" + round + ".log");
            Process p = new ProcessBuilder(List.of(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx96m",
                    "-cp", System.getProperty("java.class.path"), ImageCreationTest.class.getName(), dir.toString()))
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (!Files.readString(log).contains("started") && System.nanoTime() < deadline && p.isAlive()) {
                    Thread.sleep(5);
                }
                Thread.sleep(delays.nextInt(150));
            } finally {
                p.destroyForcibly(); // SIGKILL
                p.waitFor(30, TimeUnit.SECONDS);
            }
            assertThat(Files.readString(log)).as("round %d: child output", round).doesNotContain("Exception");
            byte[] now = Files.readAllBytes(dir.resolve("t.img"));
            if (Arrays.equals(now, old)) {
                sawOld++;
            } else {
                sawNew++;
                assertThat(QemuTools.check(dir, "t.img").exitCode()).as("round %d: qemu-img check", round).isZero();
                assertThat(QemuTools.infoJson(dir, "t.img")).contains("\"format\": \"qcow2\"");
            }
            // a killed creation may leave its temporary file; it never stands in for the image
            for (String tmp : leftovers()) {
                Files.delete(dir.resolve(tmp));
            }
        }
        assertThat(sawOld + sawNew).isEqualTo(8);
    }
}
