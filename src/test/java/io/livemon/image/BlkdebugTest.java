package io.livemon.image;

import io.livemon.testsupport.QemuTools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Set;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** blkdebug config parsing (QEMU's texts) and the injection rule: which requests fail, with what. */
class BlkdebugTest {
    @TempDir
    Path dir;

    static final String T14 = "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"640\"\n";

    @Test
    void parsesTheTranscriptConfig() throws Exception {
        BlkdebugRules r = BlkdebugRules.parse("# comment\n\n" + T14);
        assertThat(r.rules()).containsExactly(new BlkdebugRules.Rule("read_aio", 0, 5, 640, false, false,
                Set.of(BlkdebugRules.IoType.READ, BlkdebugRules.IoType.WRITE, BlkdebugRules.IoType.FLUSH)));
        assertThat(r.rules().get(0).offset()).isEqualTo(640 * 512);
        BlkdebugRules d = BlkdebugRules.parse("[inject-error]\nevent = \"write_aio\"\nonce = \"on\"\n"
                + "immediately = \"yes\"\niotype = \"write\"\n[set-state]\nevent = \"read_aio\"\nnew_state = \"2\"\n");
        BlkdebugRules.Rule w = d.rules().get(0);
        assertThat(w.errno()).isEqualTo(5);
        assertThat(w.sector()).isEqualTo(-1);
        assertThat(w.once()).isTrue();
        assertThat(w.immediately()).isTrue();
        assertThat(w.ioTypes()).containsExactly(BlkdebugRules.IoType.WRITE);
        assertThat(d.setStates()).containsExactly(new BlkdebugRules.SetState("read_aio", 0, 2));
    }

    @Test
    void configErrorsAsQemuWordsThem() {
        assertError("garbage\n", "no group defined");
        assertError("[nosuch]\nevent = \"read_aio\"\n", "There is no option group 'nosuch'");
        assertError("[inject-error]\nerrno = \"5\"\n", "Missing event name for rule");
        assertError("[inject-error]\nevent = \"bogus\"\n", "invalid parameter value: bogus");
        assertError("[inject-error]\nevent = \"read_aio\"\nfoo = \"1\"\n", "Invalid parameter 'foo'");
        assertError("[inject-error]\nevent = \"read_aio\"\nsector = \"abc\"\n", "Parameter 'sector' expects a number");
        assertError("[inject-error]\nevent = \"read_aio\"\nonce = \"maybe\"\n",
                "Parameter 'once' expects 'on' or 'off'");
        assertError("[inject-error]\nevent = \"l2_load\"\n", "blkdebug event 'l2_load' is not supported by livemon"
                + " (read_aio, write_aio, flush_to_disk and flush_to_os are)");
        assertThatThrownBy(() -> BlkdebugRules.read(dir, "nosuch.conf")).isInstanceOf(ImageException.class)
                .hasMessage("Could not read blkdebug config file: No such file or directory");
    }

    private static void assertError(String conf, String message) {
        assertThatThrownBy(() -> BlkdebugRules.parse(conf)).isInstanceOf(ImageException.class).hasMessage(message);
    }

    @Test
    void aRuleFailsRequestsOverlappingItsSectorOnce() throws Exception {
        Path f = dir.resolve("f.bin");
        Files.write(f, new byte[8192]);
        BlkdebugRules rules = BlkdebugRules.parse("[inject-error]\nevent = \"read_aio\"\nsector = \"2\"\n"
                + "once = \"on\"\n");
        try (FileChannel c = new BlkdebugChannel(FileChannel.open(f, StandardOpenOption.READ), rules)) {
            c.read(ByteBuffer.allocate(1024), 0); // sectors 0-1
            c.read(ByteBuffer.allocate(512), 1536); // sector 3
            // any byte of sector 2, however unaligned the request, fails it (QEMU aligns requests first)
            assertThatThrownBy(() -> c.read(ByteBuffer.allocate(10), 1030)).isInstanceOf(IOException.class)
                    .hasMessage("Input/output error");
            c.read(ByteBuffer.allocate(10), 1030); // once: the rule is gone
        }
    }

    @Test
    void armedRulesFailOtherRequestKindsUnlessRestrictedAndFlushesNeedSectorMinusOne() throws Exception {
        Path f = dir.resolve("f.bin");
        Files.write(f, new byte[8192]);
        BlkdebugRules rules = BlkdebugRules.parse("[inject-error]\nevent = \"write_aio\"\nerrno = \"28\"\n"
                + "sector = \"1\"\n");
        try (FileChannel c = new BlkdebugChannel(FileChannel.open(f, StandardOpenOption.READ,
                StandardOpenOption.WRITE), rules)) {
            c.read(ByteBuffer.allocate(1024), 0); // not armed before the first write
            c.write(ByteBuffer.allocate(512), 0);
            assertThatThrownBy(() -> c.write(ByteBuffer.allocate(1024), 0)).hasMessage("No space left on device");
            assertThatThrownBy(() -> c.read(ByteBuffer.allocate(512), 512)).hasMessage("No space left on device");
            c.force(true);
        }
        BlkdebugRules flush = BlkdebugRules.parse("[inject-error]\nevent = \"flush_to_disk\"\niotype = \"flush\"\n");
        try (FileChannel c = new BlkdebugChannel(FileChannel.open(f, StandardOpenOption.READ,
                StandardOpenOption.WRITE), flush)) {
            c.write(ByteBuffer.allocate(512), 0);
            assertThatThrownBy(() -> c.force(true)).hasMessage("Input/output error");
        }
    }

    @Test
    void aQcow2LayerOverBlkdebugFailsTheReadOfItsDataClusterOnly() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "d.img", "64M");
        QemuTools.qemuIo(dir, "d.img", "write -P 0xdd 3M 1M");
        Files.writeString(dir.resolve("dbg.conf"), T14);
        Image d = Images.openBlkdebug(dir, "d.img", "qcow2", true, BlkdebugRules.read(dir, "dbg.conf"));
        try {
            byte[] b = new byte[65536];
            d.read(0, b, 0, b.length);
            d.read((3 << 20) + 65536, b, 0, b.length); // D's second data cluster, host 0x60000
            assertThat(b[0]).isEqualTo((byte) 0xdd);
            // D's first data cluster is at host offset 0x50000 = sector 640
            assertThatThrownBy(() -> d.read(3 << 20, b, 0, 4096)).isInstanceOf(IOException.class)
                    .hasMessage("Input/output error");
            assertThatThrownBy(() -> d.read(3 << 20, b, 0, 4096)).hasMessage("Input/output error");
        } finally {
            d.close();
        }
        QemuTools.assertClean(dir, "d.img");
    }

    /** qemu-io's break/resume/remove_break/wait_break: a request held at its breakpoint until let go. */
    @Test
    void aBreakpointHoldsTheNextRequestOfItsEventUntilResumed() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "d.img", "64M");
        QemuTools.qemuIo(dir, "d.img", "write -P 0xdd 3M 1M");
        Image d = Images.open(dir, "blkdebug::d.img", "qcow2", false);
        BlkdebugRules dbg = d.blkdebugRules();
        assertThat(dbg).isNotNull();
        assertThat(dbg.addBreakpoint("nosuch", "bp")).isEqualTo(-2); // ENOENT, as QEMU's event lookup
        assertThat(dbg.addBreakpoint("l2_load", "bp")).isEqualTo(-95); // an event livemon never raises
        assertThat(dbg.resume("bp")).isEqualTo(-2);
        assertThat(dbg.removeBreakpoint("bp")).isEqualTo(-2);
        assertThat(dbg.addBreakpoint("read_aio", "bp")).isZero();
        byte[] b = new byte[4096];
        java.util.concurrent.CompletableFuture<Void> read = java.util.concurrent.CompletableFuture.runAsync(() -> {
            try {
                d.read(3 << 20, b, 0, b.length);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        assertThat(dbg.awaitSuspended("bp", 10_000)).isTrue();
        Thread.sleep(100);
        assertThat(read).isNotDone();
        assertThat(dbg.resume("bp")).isZero();
        read.get(10, java.util.concurrent.TimeUnit.SECONDS);
        assertThat(b[0]).isEqualTo((byte) 0xdd);
        // the breakpoint was used up: the next read goes through
        d.read(3 << 20, b, 0, b.length);
        assertThat(dbg.awaitSuspended("bp", 50)).isFalse();

        // remove_break lets a held request go too; closing the image lets go of any left
        assertThat(dbg.addBreakpoint("write_aio", "w")).isZero();
        java.util.concurrent.CompletableFuture<Void> write = java.util.concurrent.CompletableFuture.runAsync(() -> {
            try {
                d.write(0, new byte[512], 0, 512);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        assertThat(dbg.awaitSuspended("w", 10_000)).isTrue();
        assertThat(dbg.removeBreakpoint("w")).isZero();
        write.get(10, java.util.concurrent.TimeUnit.SECONDS);
        assertThat(dbg.addBreakpoint("read_aio", "last")).isZero();
        java.util.concurrent.CompletableFuture<Void> held = java.util.concurrent.CompletableFuture.runAsync(() -> {
            try {
                d.read(3 << 20, b, 0, b.length);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        assertThat(dbg.awaitSuspended("last", 10_000)).isTrue();
        d.close();
        held.get(10, java.util.concurrent.TimeUnit.SECONDS);
        QemuTools.assertClean(dir, "d.img");
    }
}
