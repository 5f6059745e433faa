package io.livemon.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.livemon.block.BlockGraph;
import io.livemon.block.BlockdevOptions;
import io.livemon.block.DriveOptions;
import io.livemon.testsupport.QemuTools;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the guest sees follows the drive's discard= and detect-zeroes= options as in QEMU 7.2.22 (checked by running
 * the same qemu-io commands through QEMU's HMP and reading the image with qemu-img map afterwards).
 */
class DriveGuestOptionsTest {
    @TempDir
    Path dir;
    private BlockGraph graph;
    private final ByteArrayOutputStream outBytes = new ByteArrayOutputStream();
    private HmpSession session;

    @BeforeEach
    void setUp() {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        graph = new BlockGraph(dir);
        PrintStream out = new PrintStream(outBytes, true, StandardCharsets.UTF_8);
        session = new HmpSession(graph, new CommandTable(), out, out, false);
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "a.img", "4M");
        QemuTools.qemuIo(dir, "a.img", "write -P 0x11 0 2M");
    }

    @AfterEach
    void tearDown() {
        graph.close();
    }

    private String hmp(String... lines) {
        outBytes.reset();
        for (String l : lines) {
            Interpreter.execute(session, l);
        }
        return outBytes.toString(StandardCharsets.UTF_8);
    }

    /** qemu-img map's JSON line for the run that starts at {@code start}. */
    private String mapAt(long start) {
        graph.close();
        String map = QemuTools.qemuImg(dir, "map", "-U", "--output=json", "a.img").stdout();
        for (String line : map.split("\n")) {
            if (line.contains("\"start\": " + start + ",")) {
                return line;
            }
        }
        throw new AssertionError("no run at " + start + " in " + map);
    }

    @Test
    void aGuestDiscardIsIgnoredByDefault() throws Exception {
        graph.addDrive(DriveOptions.parse("file=a.img,if=none,id=virtio0"));
        String out = hmp("qemu-io virtio0 \"discard 0 64k\"", "qemu-io virtio0 \"read -P 0x11 0 64k\"");
        assertThat(out).startsWith("discard 65536/65536 bytes at offset 0\n");
        assertThat(out).doesNotContain("Pattern verification failed");
        assertThat(mapAt(0)).contains("\"length\": 2097152").contains("\"data\": true");
        QemuTools.assertClean(dir, "a.img");
    }

    @Test
    void discardUnmapReachesTheImage() throws Exception {
        graph.addDrive(DriveOptions.parse("file=a.img,if=none,id=virtio0,discard=unmap"));
        String out = hmp("qemu-io virtio0 \"discard 0 64k\"", "qemu-io virtio0 \"read -P 0 0 64k\"");
        assertThat(out).doesNotContain("Pattern verification failed");
        assertThat(mapAt(0)).contains("\"length\": 65536").contains("\"zero\": true").contains("\"data\": false");
        QemuTools.assertClean(dir, "a.img");
    }

    @Test
    void detectZeroesUnmapTurnsAWriteOfZeroesIntoZeroClusters() throws Exception {
        graph.addDrive(DriveOptions.parse("file=a.img,if=none,id=virtio0,detect-zeroes=unmap"));
        String out = hmp("qemu-io virtio0 \"write -P 0 192k 64k\"", "qemu-io virtio0 \"read -P 0 192k 64k\"",
                "info block");
        assertThat(out).doesNotContain("Pattern verification failed");
        assertThat(out.replaceAll("#block\\d+", "#block")).endsWith("virtio0 (#block): a.img (qcow2)\n"
                + "    Removable device: not locked, tray closed\n"
                + "    Cache mode:       writeback\n"
                + "    Detect zeroes:    unmap\n");
        assertThat(mapAt(196608)).contains("\"length\": 65536").contains("\"zero\": true");
        QemuTools.assertClean(dir, "a.img");
    }

    @Test
    void withoutDetectZeroesAWriteOfZeroesIsData() throws Exception {
        graph.addDrive(DriveOptions.parse("file=a.img,if=none,id=virtio0"));
        hmp("qemu-io virtio0 \"write -P 0 192k 64k\"");
        assertThat(mapAt(0)).contains("\"length\": 2097152").contains("\"zero\": false");
    }

    @Test
    void badValuesAreRefusedWithQemusMessages() throws Exception {
        assertThatThrownBy(() -> graph.addDrive(DriveOptions.parse("file=a.img,if=none,id=v,discard=bogus")))
                .hasMessage("Invalid discard option");
        assertThatThrownBy(() -> graph.addDrive(DriveOptions.parse("file=a.img,if=none,id=v,detect-zeroes=bogus")))
                .hasMessage("invalid parameter value: bogus");
        String base = "driver=qcow2,node-name=n0,file.driver=file,file.filename=a.img,";
        assertThatThrownBy(() -> BlockdevOptions.fromDotted(base + "discard=bogus"))
                .hasMessage("Parameter 'discard' does not accept value 'bogus'");
        assertThatThrownBy(() -> BlockdevOptions.fromDotted(base + "detect-zeroes=bogus"))
                .hasMessage("Parameter 'detect-zeroes' does not accept value 'bogus'");
        assertThatThrownBy(() -> BlockdevOptions.fromDotted(base + "detect-zeroes=unmap"))
                .hasMessage("setting detect-zeroes to unmap is not allowed without setting discard operation to "
                        + "unmap");
        assertThat(BlockdevOptions.fromDotted(base + "detect-zeroes=unmap,discard=unmap").detectZeroes())
                .isEqualTo("unmap");
    }
}
