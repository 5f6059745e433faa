package io.livemon.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** livemon started with QEMU's -blockdev: transcript 14's graph, and start-up errors as QEMU prints them. */
class BlockdevStartupTest {
    @TempDir
    Path dir;

    static String bd(String n, String file, String rest) {
        return "{\"driver\":\"qcow2\",\"node-name\":\"node-" + n + "\",\"file\":" + file + rest + "}";
    }

    static final String[] GRAPH = {
        "-blockdev", bd("A", "{\"driver\":\"file\",\"filename\":\"file-A.img\"}", ""),
        "-blockdev", bd("B", "{\"driver\":\"file\",\"filename\":\"file-B.img\"}", ",\"backing\":\"node-A\""),
        "-blockdev", bd("C", "{\"driver\":\"file\",\"filename\":\"file-C.img\"}", ",\"backing\":\"node-B\""),
        "-blockdev", bd("D", "{\"driver\":\"blkdebug\",\"config\":\"dbg.conf\",\"image\":{\"driver\":\"file\","
                + "\"filename\":\"file-D.img\"}}", ",\"backing\":\"node-C\""),
        "-blockdev", bd("E", "{\"driver\":\"file\",\"filename\":\"file-E.img\"}", ",\"backing\":\"node-D\""),
    };

    @BeforeEach
    void images() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "file-A.img", "64M");
        String prev = "A";
        for (String n : new String[] {"B", "C", "D", "E"}) {
            QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "file-" + prev + ".img", "-F", "qcow2",
                    "file-" + n + ".img");
            prev = n;
        }
        QemuTools.qemuIo(dir, "file-D.img", "write -P 0xdd 3M 1M");
        Files.writeString(dir.resolve("dbg.conf"), "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\n"
                + "sector = \"640\"\n");
    }

    private LivemonProcess.Run livemon(String stdin, String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("-M", "none", "-nodefaults", "-display", "none"));
        all.addAll(List.of(args));
        return LivemonProcess.run(dir, stdin, all.toArray(new String[0]));
    }

    @Test
    void transcript14GraphSession3() throws Exception {
        LivemonProcess.Run r = livemon("block_stream node-E\n@sleep\ninfo block-jobs\nquit\n", GRAPH);
        assertThat(r.err()).isEmpty();
        assertThat(r.exit()).isZero();
        // HMP prints nothing for the failed job; it is gone when info block-jobs runs
        assertThat(r.out()).contains("(qemu) block_stream node-E\n(qemu) info block-jobs\nNo active jobs\n");
        for (String n : new String[] {"A", "B", "C", "D", "E"}) {
            QemuTools.assertClean(dir, "file-" + n + ".img");
        }
        assertThat(QemuTools.qemuImg(dir, "info", "file-E.img").stdout()).contains("backing file: file-D.img");
    }

    @Test
    void nodesAreListedAsQemuListsThemAndHaveNoDevice() throws Exception {
        LivemonProcess.Run r = livemon("info block\ninfo block -n\nquit\n", GRAPH);
        assertThat(r.exit()).isZero();
        String out = r.out().replaceAll("#block\\d+", "#block");
        assertThat(out).contains("(qemu) info block\n(qemu) info block -n\nnode-E: file-E.img (qcow2)\n");
        assertThat(out).contains("node-D: file-D.img (qcow2)\n    Cache mode:       writeback\n"
                + "    Backing file:     file-C.img (chain depth: 3)\n\n#block: file-D.img (blkdebug)\n");
        assertThat(out.indexOf("node-E:")).isLessThan(out.indexOf("node-D:"));
        assertThat(out.indexOf("node-B:")).isLessThan(out.indexOf("node-A:"));
    }

    @Test
    void startUpErrorsAsQemuPrintsThem() throws Exception {
        String[][] cases = {
            {"{\"driver\":\"qcow2\"", "JSON parse error, premature EOI"},
            {"{\"driver\":\"nosuch\",\"node-name\":\"x\"}", "Parameter 'driver' does not accept value 'nosuch'"},
            {"{\"node-name\":\"x\"}", "Parameter 'driver' is missing"},
            {"{\"driver\":\"qcow2\",\"node-name\":\"x\"}", "Parameter 'file' is missing"},
            {"{\"driver\":\"qcow2\",\"node-name\":\"x\",\"file\":{\"driver\":\"file\",\"filename\":\"missing.img\"}}",
                "Could not open 'missing.img': No such file or directory"},
            {"{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"file-A.img\"}}",
                "'node-name' must be specified for the root node"},
            {"{\"driver\":\"qcow2\",\"node-name\":\"x\",\"file\":{\"driver\":\"file\",\"filename\":\"file-B.img\"},"
                + "\"backing\":\"nosuch\"}",
                "Could not open backing file: Cannot find device='nosuch' nor node-name='nosuch'"},
            {"{\"driver\":\"qcow2\",\"node-name\":\"x\",\"file\":{\"driver\":\"file\",\"filename\":\"file-A.img\","
                + "\"bogus\":1}}", "Parameter 'file.bogus' is unexpected"},
            {"{\"driver\":\"qcow2\",\"node-name\":\"x\",\"file\":{\"driver\":\"blkdebug\",\"config\":\"nosuch.conf\","
                + "\"image\":{\"driver\":\"file\",\"filename\":\"file-A.img\"}}}",
                "Could not read blkdebug config file: No such file or directory"},
            {"[1]", "Parameter 'driver' does not accept value '[1]'"},
            {"driver=qcow2,node-name=x,file.driver=file,file.filename=missing.img",
                "Could not open 'missing.img': No such file or directory"},
        };
        for (String[] c : cases) {
            LivemonProcess.Run r = livemon("info block\n", "-blockdev", c[0]);
            assertThat(r.exit()).as(c[0]).isEqualTo(1);
            assertThat(r.err()).isEqualTo("livemon: -blockdev " + c[0] + ": " + c[1] + "\n");
            assertThat(r.out()).doesNotContain("(qemu)");
        }
    }
}
