package io.livemon.monitor;

import io.livemon.testsupport.QemuTools;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Expected output checked against qemu-io of QEMU 7.2.22 (standalone and through HMP {@code qemu-io}) on the
 * conformance chain of scenario 17; the timing lines use a fake clock that advances 1 ms per I/O.
 */
class QemuIoCommandTest {
    private static final long MIB = 1 << 20;
    private static final String T1MS = "00.00 sec";

    private QemuIoFakeImage top;
    private final ByteArrayOutputStream outBytes = new ByteArrayOutputStream();
    private final ByteArrayOutputStream errBytes = new ByteArrayOutputStream();
    private final AtomicLong clock = new AtomicLong();
    private final QemuIoCommand qemuIo = new QemuIoCommand(() -> clock.getAndAdd(1_000_000));

    @BeforeEach
    void chain() {
        // a small version of scenario 17's chain: base A (a1 at 0-6M, a2 at 20M-22M), top E with b2/d2/e1/e2
        QemuIoFakeImage base = new QemuIoFakeImage(32 * MIB).fill(0, 6 * MIB, 0xa1).fill(20 * MIB, 2 * MIB, 0xa2);
        top = new QemuIoFakeImage(32 * MIB).withBacking(base);
        top.fill(MIB, MIB / 2, 0xb2).fill(7 * MIB, MIB / 2, 0xd2);
        top = top.fill(12 * MIB, MIB, 0xe1).fill(21 * MIB, 65536, 0xe2);
    }

    private String run(String cmd) {
        outBytes.reset();
        errBytes.reset();
        PrintStream out = new PrintStream(outBytes, true, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(errBytes, true, StandardCharsets.UTF_8);
        qemuIo.execute(top, cmd, out, err);
        return outBytes.toString(StandardCharsets.UTF_8);
    }

    private String err() {
        return errBytes.toString(StandardCharsets.UTF_8);
    }

    @Test
    void readWithPattern() {
        assertThat(run("read -P 0xa1 0 1M")).isEqualTo(
                "read 1048576/1048576 bytes at offset 0\n"
                + "1 MiB, 1 ops; " + T1MS + " (1000 MiB/sec and 1000.0000 ops/sec)\n");
        assertThat(run("read -P 0xb2 1M 512k")).startsWith("read 524288/524288 bytes at offset 1048576\n"
                + "512 KiB, 1 ops; ");
        assertThat(run("read -P 0xa1 1M 512k")).startsWith(
                "Pattern verification failed at offset 1048576, 524288 bytes\n"
                + "read 524288/524288 bytes at offset 1048576\n512 KiB, 1 ops; ");
        assertThat(run("read -P 0 30M 1M")).startsWith("read 1048576/1048576 bytes at offset 31457280\n");
        assertThat(run("read -P 0xe2 21M 128k")).startsWith(
                "Pattern verification failed at offset 22020096, 131072 bytes\n");
        assertThat(run("read -q -P 0xa1 1M 512k"))
                .isEqualTo("Pattern verification failed at offset 1048576, 524288 bytes\n");
        assertThat(run("r -q 0 1")).isEmpty();
        assertThat(run("read 0 1.5k")).startsWith("read 1536/1536 bytes at offset 0\n1.500 KiB, 1 ops; ");
        assertThat(run("read 0 0")).isEqualTo("read 0/0 bytes at offset 0\n"
                + "0 bytes, 1 ops; " + T1MS + " (0 bytes/sec and 1000.0000 ops/sec)\n");
    }

    /** Recorded from QEMU 7.2 on a drive without blkdebug: bdrv_debug_* find no driver and return -ENOTSUP. */
    @Test
    void breakpointsWithoutBlkdebug() {
        assertThat(run("break read_aio bp")).isEqualTo("Could not set breakpoint: Operation not supported\n");
        assertThat(run("remove_break bp")).isEqualTo("Could not remove breakpoint bp: Operation not supported\n");
        assertThat(run("resume bp")).isEqualTo("Could not resume request: Operation not supported\n");
        assertThat(run("help resume")).isEqualTo("resume tag -- resumes the request tagged as tag\n");
    }

    @Test
    void hexdump() {
        assertThat(run("read -v 12M 32")).isEqualTo(
                "00c00000:  e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1  ................\n"
                + "00c00010:  e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1 e1  ................\n"
                + "read 32/32 bytes at offset 12582912\n"
                + "32 bytes, 1 ops; " + T1MS + " (31.250 KiB/sec and 1000.0000 ops/sec)\n");
        assertThat(run("read -v 7M 40")).startsWith(
                "00700000:  d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2  ................\n"
                + "00700010:  d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2 d2  ................\n"
                + "00700020:  d2 d2 d2 d2 d2 d2 d2 d2  ........\n"
                + "read 40/40 bytes at offset 7340032\n40 bytes, 1 ops; ");
        run("write -P 0x41 0 17");
        assertThat(run("read -v 0 17")).startsWith(
                "00000000:  41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41  AAAAAAAAAAAAAAAA\n"
                + "00000010:  41  A\n");
        // options may be clustered, attached, or follow the operands
        assertThat(run("read -vP 0xe1 12M 1")).startsWith("00c00000:  e1  .\nread 1/1 bytes at offset 12582912\n");
        assertThat(run("read -P0xe1 12M 1")).startsWith("read 1/1 bytes at offset 12582912\n");
        assertThat(run("read 12M 1 -v")).startsWith("00c00000:  e1  .\n");
        assertThat(run("read -P 0xe1 -- 12M 1")).startsWith("read 1/1 bytes at offset 12582912\n");
    }

    @Test
    void writeAndDiscard() {
        assertThat(run("write -P 0x41 0 17")).isEqualTo("wrote 17/17 bytes at offset 0\n"
                + "17 bytes, 1 ops; " + T1MS + " (16.602 KiB/sec and 1000.0000 ops/sec)\n");
        assertThat(run("read -P 0x41 0 17")).doesNotContain("Pattern");
        assertThat(run("write -z 64k 64k")).startsWith("wrote 65536/65536 bytes at offset 65536\n64 KiB, 1 ops; ");
        assertThat(run("read -P 0 64k 64k")).doesNotContain("Pattern");
        assertThat(run("write -z 0 0")).isEqualTo("wrote 0/0 bytes at offset 0\n"
                + "0 bytes, 1 ops; " + T1MS + " (0 bytes/sec and 1000.0000 ops/sec)\n");
        assertThat(run("write 0 512")).startsWith("wrote 512/512 bytes at offset 0\n");
        assertThat(run("read -P 0xcd 0 512")).doesNotContain("Pattern");
        assertThat(run("discard 0 64k")).startsWith("discard 65536/65536 bytes at offset 0\n64 KiB, 1 ops; ");
        assertThat(run("discard -q 0 64k")).isEmpty();
        assertThat(run("flush")).isEmpty();
        assertThat(top.flushes).isEqualTo(1);
    }

    @Test
    void lengthMapAlloc() {
        assertThat(run("length")).isEqualTo("32 MiB\n");
        assertThat(run("l")).isEqualTo("32 MiB\n");
        assertThat(run("map")).isEqualTo(
                "1 MiB (0x100000) bytes not allocated at offset 0 bytes (0x0)\n"
                + "512 KiB (0x80000) bytes     allocated at offset 1 MiB (0x100000)\n"
                + "5.500 MiB (0x580000) bytes not allocated at offset 1.500 MiB (0x180000)\n"
                + "512 KiB (0x80000) bytes     allocated at offset 7 MiB (0x700000)\n"
                + "4.500 MiB (0x480000) bytes not allocated at offset 7.500 MiB (0x780000)\n"
                + "1 MiB (0x100000) bytes     allocated at offset 12 MiB (0xc00000)\n"
                + "8 MiB (0x800000) bytes not allocated at offset 13 MiB (0xd00000)\n"
                + "64 KiB (0x10000) bytes     allocated at offset 21 MiB (0x1500000)\n"
                + "10.938 MiB (0xaf0000) bytes not allocated at offset 21.062 MiB (0x1510000)\n");
        assertThat(run("alloc 0")).isEqualTo("0/512 bytes allocated at offset 0 bytes\n");
        assertThat(run("alloc 0 64k")).isEqualTo("0/65536 bytes allocated at offset 0 bytes\n");
        assertThat(run("alloc 12M 1M")).isEqualTo("1048576/1048576 bytes allocated at offset 12 MiB\n");
        assertThat(run("alloc 12M 100M")).isEqualTo("1114112/20971520 bytes allocated at offset 12 MiB\n");
        assertThat(run("alloc 32M 512")).isEqualTo("0/0 bytes allocated at offset 32 MiB\n");
        assertThat(run("a 40M")).isEqualTo("0/0 bytes allocated at offset 40 MiB\n");
    }

    @Test
    void errors() {
        assertThat(run("read 31M 2M")).isEqualTo("read failed: Input/output error\n");
        assertThat(run("read -P 0xa1 31M 2M")).isEqualTo("read failed: Input/output error\n");
        assertThat(run("write 64M 512")).isEqualTo("write failed: Input/output error\n");
        assertThat(run("discard 64M 512")).isEqualTo("discard failed: Input/output error\n");
        assertThat(run("read 0 1.5")).isEqualTo(
                "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 1.5\n");
        assertThat(run("read 0x 1")).isEqualTo(
                "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 0x\n");
        assertThat(run("read 99999999999999999999 1"))
                .isEqualTo("Parsing error: argument too large -- 99999999999999999999\n");
        assertThat(run("read 8E 1")).isEqualTo("Parsing error: argument too large -- 8E\n");
        assertThat(run("read 0 3G")).isEqualTo("length cannot exceed 2147483136, given 3G\n");
        assertThat(run("read -P 256 0 1")).isEqualTo("256 is not a valid pattern byte\n");
        assertThat(run("read -P 0xa1 -s 1 -l 2 0 1"))
                .isEqualTo("pattern verification range exceeds end of read data\n");
        String readUsage = "read [-abCqv] [-P pattern [-s off] [-l len]] off len -- "
                + "reads a number of bytes at a specified offset\n";
        assertThat(run("read -l 2 0 1")).isEqualTo(readUsage);
        assertThat(run("read 0 1 2")).isEqualTo(readUsage);
        assertThat(run("read -x 0 1")).isEqualTo(readUsage);
        assertThat(err()).isEqualTo("read: invalid option -- 'x'\n");
        assertThat(run("read 0 1 -P")).isEqualTo(readUsage);
        assertThat(err()).isEqualTo("read: option requires an argument -- 'P'\n");
        assertThat(run("read 0")).isEmpty();
        assertThat(err()).isEqualTo("bad argument count 1 to read, expected at least 2 arguments\n");
        assertThat(run("alloc")).isEmpty();
        assertThat(err()).isEqualTo("bad argument count 0 to alloc, expected between 1 and 2 arguments\n");
        assertThat(run("map 1")).isEmpty();
        assertThat(err()).isEqualTo("bad argument count 1 to map, expected 0 arguments\n");
        assertThat(run("bogus 1")).isEmpty();
        assertThat(err()).isEqualTo("command \"bogus\" not found\n");
        assertThat(run("write -u 0 512")).isEqualTo("-u requires -z to be specified\n");
        assertThat(run("write -P 1 -z 0 1"))
                .isEqualTo("Only one of -z, -P, and -s can be specified at the same time\n");
        assertThat(run("write -P 0x0A -c 0 1")).isEqualTo("1 is not a sector-aligned value for 'count'\n");
        assertThat(run("sleep x")).isEqualTo("x is not a valid number\n");
        assertThat(run("sleep -1")).isEqualTo("-1 is not a valid number\n");
        assertThat(run("help bogus")).isEqualTo("command bogus not found\n");
        assertThat(run("")).isEmpty();
        assertThat(err()).isEmpty();
    }

    @Test
    void hexSuffixWarningGoesToTheMonitor() {
        assertThat(run("read 0x10k 1")).startsWith(
                "warning: Using a multiplier suffix on hex numbers is deprecated: 0x10k\n"
                + "read 1/1 bytes at offset 16384\n");
    }

    @Test
    void help() {
        String h = run("help");
        assertThat(h).startsWith("abort -- simulate a program crash using abort(3)\n");
        assertThat(h).contains("\nmap  -- prints the allocated areas of a file\n");
        assertThat(h).contains("\nsleep -- waits for the given value in milliseconds\n");
        assertThat(h).endsWith("\n\nUse 'help commandname' for extended help.\n");
    }

    @Test
    void sizeFormatting() {
        assertThat(QemuIoCommand.cvtstr(0)).isEqualTo("0 bytes");
        assertThat(QemuIoCommand.cvtstr(32)).isEqualTo("32 bytes");
        assertThat(QemuIoCommand.cvtstr(1023)).isEqualTo("1023 bytes");
        assertThat(QemuIoCommand.cvtstr(1536)).isEqualTo("1.500 KiB");
        assertThat(QemuIoCommand.cvtstr(22085632)).isEqualTo("21.062 MiB");
        assertThat(QemuIoCommand.cvtstr(11468800)).isEqualTo("10.938 MiB");
        assertThat(QemuIoCommand.cvtstr(1L << 30)).isEqualTo("1 GiB");
        assertThat(QemuIoCommand.timestr(0, 1_000_000, false)).isEqualTo("00.00 sec");
        assertThat(QemuIoCommand.timestr(2, 500_000_000, false)).isEqualTo("0:00:02.50");
        assertThat(QemuIoCommand.timestr(3725, 0, false)).isEqualTo("1:02:05.00");
    }

    /** Checked against HMP {@code qemu-io virtio0 "write -c ..."} of QEMU 7.2.22 on the same images. */
    @Test
    void compressedWritesAsQemu(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "s.qcow2", "4M");
        QemuTools.qemuIo(dir, "s.qcow2", "write -P 1 0 64k");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "raw", "r.img", "4M");
        try (io.livemon.image.Image q = io.livemon.image.Images.open(dir, "s.qcow2", "qcow2", false);
             io.livemon.image.Image r = io.livemon.image.Images.open(dir, "r.img", "raw", false)) {
            PrintStream out = new PrintStream(outBytes, true, StandardCharsets.UTF_8);
            PrintStream err = new PrintStream(errBytes, true, StandardCharsets.UTF_8);
            String[][] cases = {
                {"write -c 0 64k", "write failed: Input/output error\n"},
                {"write -c 64k 64k", "wrote 65536/65536 bytes at offset 65536\n"},
                {"write -c 128k 4k", "write failed: Invalid argument\n"},
                {"write -c 197120 64k", "write failed: Invalid argument\n"},
                {"write -c 4128768 65536", "wrote 65536/65536 bytes at offset 4128768\n"},
            };
            for (String[] c : cases) {
                outBytes.reset();
                qemuIo.execute(q, c[0], out, err);
                assertThat(outBytes.toString(StandardCharsets.UTF_8)).as(c[0]).startsWith(c[1]);
            }
            outBytes.reset();
            qemuIo.execute(r, "write -c 0 64k", out, err);
            assertThat(outBytes.toString(StandardCharsets.UTF_8)).isEqualTo("write failed: Operation not supported\n");
        }
        String map = QemuTools.qemuImg(dir, "map", "--output=json", "s.qcow2").stdout();
        assertThat(map).contains("{ \"start\": 65536, \"length\": 65536, \"depth\": 0, \"present\": true, "
                + "\"zero\": false, \"data\": true}");
        QemuTools.assertClean(dir, "s.qcow2");
    }
}
