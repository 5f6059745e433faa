package io.livemon.monitor;

import io.livemon.image.BlockStatus;
import io.livemon.image.Errno;
import io.livemon.image.Image;
import io.livemon.image.ImageException;

import java.io.IOException;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * The qemu-io commands that {@code qemu-io DEVICE "COMMAND"} runs against a block device, printing what
 * QEMU 7.2's qemu-io prints: read, write, discard, flush, map, alloc, length, sleep, help (aliases r, w, d, f,
 * a, l). The command line is split on single spaces, as qemu-io does (no quoting). Numbers are bytes with
 * optional k/M/G/T/P/E suffixes ({@link SizeParser#cvtnum(String)}).
 *
 * <p>QEMU sends some of these messages to its stderr rather than stdout: {@code command "x" not found},
 * {@code bad argument count ...} and getopt's {@code read: invalid option -- 'x'}. They go to {@code err}.
 */
public final class QemuIoCommand {

    /** BDRV_REQUEST_MAX_BYTES in QEMU 7.2. */
    static final long MAX_REQUEST_BYTES = 2147483136L;

    private static final String EIO = Errno.EIO.strerror;
    private static final int CHUNK = 1 << 20;

    private record CmdInfo(String name, String alt, int argmin, int argmax, String args, String oneline) {
        String usage() {
            return name + " " + args + " -- " + oneline;
        }
    }

    private static final CmdInfo READ = new CmdInfo("read", "r", 2, -1,
            "[-abCqv] [-P pattern [-s off] [-l len]] off len", "reads a number of bytes at a specified offset");
    private static final CmdInfo WRITE = new CmdInfo("write", "w", 2, -1,
            "[-bcCfnquz] [-P pattern | -s source_file] off len", "writes a number of bytes at a specified offset");
    private static final CmdInfo DISCARD = new CmdInfo("discard", "d", 2, -1,
            "[-Cq] off len", "discards a number of bytes at a specified offset");
    private static final CmdInfo FLUSH = new CmdInfo("flush", "f", 0, 0, null, "flush all in-core file state to disk");
    private static final CmdInfo MAP = new CmdInfo("map", null, 0, 0, "", "prints the allocated areas of a file");
    private static final CmdInfo ALLOC = new CmdInfo("alloc", "a", 1, 2, "offset [count]",
            "checks if offset is allocated in the file");
    private static final CmdInfo LENGTH = new CmdInfo("length", "l", 0, 0, null, "gets the length of the current file");
    private static final CmdInfo SLEEP = new CmdInfo("sleep", null, 1, 1, null,
            "waits for the given value in milliseconds");
    private static final CmdInfo HELP = new CmdInfo("help", "?", 0, 1, "[command]", "help for one or all commands");
    private static final CmdInfo BREAK = new CmdInfo("break", null, 2, 2, "event tag",
            "sets a breakpoint on event and tags the stopped request as tag");
    private static final CmdInfo REMOVE_BREAK = new CmdInfo("remove_break", null, 1, 1, "tag",
            "remove a breakpoint by tag");
    private static final CmdInfo RESUME = new CmdInfo("resume", null, 1, 1, "tag", "resumes the request tagged as tag");
    private static final CmdInfo WAIT_BREAK = new CmdInfo("wait_break", null, 1, 1, "tag",
            "waits for the suspension of a request");
    private static final List<CmdInfo> COMMANDS = List.of(ALLOC, BREAK, DISCARD, FLUSH, HELP, LENGTH, MAP, READ,
            REMOVE_BREAK, RESUME, SLEEP, WAIT_BREAK, WRITE);

    /** How long {@code wait_break} waits for a request to reach its breakpoint (QEMU waits for good). */
    private static final long WAIT_BREAK_MS = 30_000;

    /** What {@code help} lists inside QEMU 7.2's HMP (commands livemon lacks answer "not found"). */
    private static final List<String> HELP_ALL = List.of(
            "abort -- simulate a program crash using abort(3)",
            "aio_flush -- completes all outstanding aio requests",
            "aio_read [-Ciqv] [-P pattern] off len [len..] -- asynchronously reads a number of bytes",
            "aio_write [-Cfiquz] [-P pattern] off len [len..] -- asynchronously writes a number of bytes",
            ALLOC.usage(),
            BREAK.usage(),
            DISCARD.usage(),
            "flush -- flush all in-core file state to disk",
            HELP.usage(),
            "info -- prints information about the current file",
            "length -- gets the length of the current file",
            "map  -- prints the allocated areas of a file",
            READ.usage(),
            "readv [-Cqv] [-P pattern] off len [len..] -- reads a number of bytes at a specified offset",
            REMOVE_BREAK.usage(),
            "reopen [(-r|-w)] [-c cache] [-o options] -- reopens an image with new options",
            RESUME.usage(),
            "sigraise signal -- raises a signal",
            "sleep -- waits for the given value in milliseconds",
            "truncate [-m prealloc_mode] off -- truncates the current file at the given offset",
            WAIT_BREAK.usage(),
            WRITE.usage(),
            "writev [-Cfq] [-P pattern] off len [len..] -- writes a number of bytes at a specified offset");

    private static final QemuIoCommand DEFAULT = new QemuIoCommand(System::nanoTime);

    private final LongSupplier nanoClock;

    /** @param nanoClock a monotonic nanosecond clock for the timing line (tests pass a fixed one) */
    public QemuIoCommand(LongSupplier nanoClock) {
        this.nanoClock = nanoClock;
    }

    /** Runs one qemu-io command; stderr-bound messages go to {@code System.err}. Returns 0 or a negative errno. */
    public static int run(Image image, String commandLine, PrintStream out) {
        return DEFAULT.execute(image, commandLine, out, System.err, null);
    }

    /**
     * As {@link #run(Image, String, PrintStream)}, on a drive: {@code takesWrite} runs before a command that writes
     * (write, discard), where QEMU extends the drive's permissions with write (qemu-io-cmds.c command()).
     */
    public static int run(Image image, String commandLine, PrintStream out, Runnable takesWrite) {
        return DEFAULT.execute(image, commandLine, out, System.err, takesWrite);
    }

    /** Runs one qemu-io command. Returns 0 or a negative errno (HMP ignores it). */
    public static int run(Image image, String commandLine, PrintStream out, PrintStream err) {
        return DEFAULT.execute(image, commandLine, out, err, null);
    }

    public int execute(Image image, String commandLine, PrintStream out, PrintStream err) {
        return execute(image, commandLine, out, err, null);
    }

    private int execute(Image image, String commandLine, PrintStream out, PrintStream err, Runnable takesWrite) {
        List<String> argv = new ArrayList<>();
        for (String w : commandLine.split(" ", -1)) {
            if (!w.isEmpty()) {
                argv.add(w);
            }
        }
        if (argv.isEmpty()) {
            return 0;
        }
        CmdInfo ct = find(argv.get(0));
        if (ct == null) {
            err.println("command \"" + argv.get(0) + "\" not found");
            return -22;
        }
        int nargs = argv.size() - 1;
        if (nargs < ct.argmin() || (ct.argmax() != -1 && nargs > ct.argmax())) {
            if (ct.argmax() == -1) {
                err.println("bad argument count " + nargs + " to " + argv.get(0) + ", expected at least "
                        + ct.argmin() + " arguments");
            } else if (ct.argmin() == ct.argmax()) {
                err.println("bad argument count " + nargs + " to " + argv.get(0) + ", expected " + ct.argmin()
                        + " arguments");
            } else {
                err.println("bad argument count " + nargs + " to " + argv.get(0) + ", expected between "
                        + ct.argmin() + " and " + ct.argmax() + " arguments");
            }
            return -22;
        }
        if (takesWrite != null && (ct == WRITE || ct == DISCARD)) {
            takesWrite.run();
        }
        try {
            if (ct == READ) {
                return read(image, argv, out, err);
            } else if (ct == WRITE) {
                return write(image, argv, out, err);
            } else if (ct == DISCARD) {
                return discard(image, argv, out, err);
            } else if (ct == FLUSH) {
                try {
                    image.flush();
                } catch (IOException e) {
                    return -5;
                }
                return 0;
            } else if (ct == MAP) {
                return map(image, out);
            } else if (ct == ALLOC) {
                return alloc(image, argv, out);
            } else if (ct == LENGTH) {
                out.println(cvtstr(image.size()));
                return 0;
            } else if (ct == BREAK || ct == REMOVE_BREAK || ct == RESUME || ct == WAIT_BREAK) {
                return breakpoint(image, ct, argv, out, err);
            } else if (ct == SLEEP) {
                return sleep(argv, out);
            } else {
                return help(argv, out);
            }
        } finally {
            out.flush();
            err.flush();
        }
    }

    private static CmdInfo find(String name) {
        for (CmdInfo c : COMMANDS) {
            if (c.name().equals(name) || name.equals(c.alt())) {
                return c;
            }
        }
        return null;
    }

    // ---------------------------------------------------------------- read

    private int read(Image image, List<String> argv, PrintStream out, PrintStream err) {
        QemuIoGetopt g = new QemuIoGetopt(argv, "bCl:pP:qs:v", err);
        boolean cflag = false, qflag = false, vflag = false, pflag = false, sflag = false, lflag = false;
        boolean bflag = false;
        int pattern = 0;
        long patternOffset = 0, patternCount = 0;
        for (QemuIoGetopt.Opt o : g.options) {
            switch (o.option()) {
                case 'b' -> bflag = true;
                case 'C' -> cflag = true;
                case 'l' -> {
                    lflag = true;
                    patternCount = number(o.arg(), out);
                    if (patternCount < 0) {
                        return (int) patternCount;
                    }
                }
                case 'P' -> {
                    pflag = true;
                    pattern = parsePattern(o.arg(), out);
                    if (pattern < 0) {
                        return -22;
                    }
                }
                case 'q' -> qflag = true;
                case 's' -> {
                    sflag = true;
                    patternOffset = number(o.arg(), out);
                    if (patternOffset < 0) {
                        return (int) patternOffset;
                    }
                }
                case 'v' -> vflag = true;
                default -> {
                }
            }
        }
        if (g.error || g.operands.size() != 2) {
            out.println(READ.usage());
            return -22;
        }
        long offset = number(g.operands.get(0), out);
        if (offset < 0) {
            return (int) offset;
        }
        long count = number(g.operands.get(1), out);
        if (count < 0) {
            return (int) count;
        } else if (count > MAX_REQUEST_BYTES) {
            out.println("length cannot exceed " + MAX_REQUEST_BYTES + ", given " + g.operands.get(1));
            return -22;
        }
        if (!pflag && (lflag || sflag)) {
            out.println(READ.usage());
            return -22;
        }
        if (!lflag) {
            patternCount = count - patternOffset;
        }
        if (patternCount < 0 || patternCount + patternOffset > count) {
            out.println("pattern verification range exceeds end of read data");
            return -22;
        }
        if (bflag) {
            if (offset % 512 != 0) {
                out.println(offset + " is not a sector-aligned value for 'offset'");
                return -22;
            }
            if (count % 512 != 0) {
                out.println(count + " is not a sector-aligned value for 'count'");
                return -22;
            }
            out.println("read failed: Operation not supported"); // no VM state in livemon
            return -95;
        }
        long t1 = nanoClock.getAsLong();
        byte[] buf;
        if (!inRange(image, offset, count)) {
            out.println("read failed: " + EIO);
            return -5;
        }
        try {
            buf = new byte[(int) count];
            for (long done = 0; done < count; ) {
                int n = (int) Math.min(CHUNK, count - done);
                image.read(offset + done, buf, (int) done, n);
                done += n;
            }
        } catch (IOException | RuntimeException e) {
            out.println("read failed: " + EIO);
            return -5;
        }
        long t2 = nanoClock.getAsLong();
        int ret = 0;
        if (pflag) {
            for (long i = patternOffset; i < patternOffset + patternCount; i++) {
                if ((buf[(int) i] & 0xff) != pattern) {
                    out.println("Pattern verification failed at offset " + (offset + patternOffset) + ", "
                            + patternCount + " bytes");
                    ret = -22;
                    break;
                }
            }
        }
        if (qflag) {
            return ret;
        }
        if (vflag) {
            dumpBuffer(buf, offset, out);
        }
        printReport("read", t2 - t1, offset, count, count, 1, cflag, out);
        return ret;
    }

    static void dumpBuffer(byte[] buf, long offset, PrintStream out) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < buf.length; i += 16) {
            sb.setLength(0);
            sb.append(String.format("%08x:  ", offset + i));
            int n = Math.min(16, buf.length - i);
            for (int j = 0; j < n; j++) {
                sb.append(String.format("%02x ", buf[i + j] & 0xff));
            }
            sb.append(' ');
            for (int j = 0; j < n; j++) {
                int c = buf[i + j] & 0xff;
                boolean alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
                sb.append(alnum ? (char) c : '.');
            }
            out.println(sb);
        }
    }

    // ---------------------------------------------------------------- write

    private int write(Image image, List<String> argv, PrintStream out, PrintStream err) {
        QemuIoGetopt g = new QemuIoGetopt(argv, "bcCfnpP:qs:uz", err);
        boolean cflag = false, qflag = false, bflag = false, pflag = false, zflag = false, compress = false;
        boolean sflag = false, fua = false, noFallback = false, mayUnmap = false;
        int pattern = 0xcd;
        String fileName = null;
        for (QemuIoGetopt.Opt o : g.options) {
            switch (o.option()) {
                case 'b' -> bflag = true;
                case 'c' -> compress = true;
                case 'C' -> cflag = true;
                case 'f' -> fua = true;
                case 'n' -> noFallback = true;
                case 'P' -> {
                    pflag = true;
                    pattern = parsePattern(o.arg(), out);
                    if (pattern < 0) {
                        return -22;
                    }
                }
                case 'q' -> qflag = true;
                case 's' -> {
                    sflag = true;
                    fileName = o.arg();
                }
                case 'u' -> mayUnmap = true;
                case 'z' -> zflag = true;
                default -> {
                }
            }
        }
        if (g.error || g.operands.size() != 2) {
            out.println(WRITE.usage());
            return -22;
        }
        if (bflag && zflag) {
            out.println("-b and -z cannot be specified at the same time");
            return -22;
        }
        if (fua && (bflag || compress)) {
            out.println("-f and -b or -c cannot be specified at the same time");
            return -22;
        }
        if (noFallback && !zflag) {
            out.println("-n requires -z to be specified");
            return -22;
        }
        if (mayUnmap && !zflag) {
            out.println("-u requires -z to be specified");
            return -22;
        }
        if ((zflag ? 1 : 0) + (pflag ? 1 : 0) + (sflag ? 1 : 0) > 1) {
            out.println("Only one of -z, -P, and -s can be specified at the same time");
            return -22;
        }
        long offset = number(g.operands.get(0), out);
        if (offset < 0) {
            return (int) offset;
        }
        long count = number(g.operands.get(1), out);
        if (count < 0) {
            return (int) count;
        } else if (count > MAX_REQUEST_BYTES && !noFallback) {
            out.println("length cannot exceed " + MAX_REQUEST_BYTES + " without -n, given " + g.operands.get(1));
            return -22;
        }
        if (bflag || compress) {
            if (offset % 512 != 0) {
                out.println(offset + " is not a sector-aligned value for 'offset'");
                return -22;
            }
            if (count % 512 != 0) {
                out.println(count + " is not a sector-aligned value for 'count'");
                return -22;
            }
        }
        byte[] buf = null;
        if (!zflag) {
            if (count > MAX_REQUEST_BYTES) {
                out.println("write failed: " + EIO);
                return -5;
            }
            buf = new byte[(int) count];
            if (sflag) {
                byte[] src;
                try {
                    src = Files.readAllBytes(Path.of(fileName));
                } catch (NoSuchFileException e) {
                    err.println(fileName + ": No such file or directory");
                    return -22;
                } catch (IOException e) {
                    err.println(fileName + ": " + EIO);
                    return -22;
                }
                if (src.length == 0) {
                    err.println(fileName + ": file is empty");
                    return -22;
                }
                for (int i = 0; i < buf.length; i += src.length) {
                    System.arraycopy(src, 0, buf, i, Math.min(src.length, buf.length - i));
                }
            } else {
                Arrays.fill(buf, (byte) pattern);
            }
        }
        long t1 = nanoClock.getAsLong();
        if (bflag) {
            out.println("write failed: Operation not supported"); // no VM state in livemon
            return -95;
        }
        if (!inRange(image, offset, count)) {
            out.println("write failed: " + EIO);
            return -5;
        }
        try {
            if (zflag) {
                image.writeZeroes(offset, count);
            } else if (compress) {
                // one request, as QEMU's blk_pwrite_compressed: qcow2 refuses unaligned ones, raw all of them
                image.writeCompressed(offset, buf, 0, (int) count);
            } else {
                for (long done = 0; done < count; ) {
                    int n = (int) Math.min(CHUNK, count - done);
                    image.write(offset + done, buf, (int) done, n);
                    done += n;
                }
            }
            if (fua) {
                image.flush();
            }
        } catch (IOException | RuntimeException e) {
            if (compress && e instanceof ImageException) {
                // the errno decides (Errno.of classifies the failure): an unaligned request, a format without
                // compressed clusters; every other failure is EIO, as below
                Errno errno = Errno.of(e);
                if (errno == Errno.EINVAL || errno == Errno.ENOTSUP) {
                    out.println("write failed: " + errno.strerror);
                    return -errno.number;
                }
            }
            out.println("write failed: " + EIO);
            return -5;
        }
        long t2 = nanoClock.getAsLong();
        if (qflag) {
            return 0;
        }
        printReport("wrote", t2 - t1, offset, count, count, 1, cflag, out);
        return 0;
    }

    // ---------------------------------------------------------------- discard

    private int discard(Image image, List<String> argv, PrintStream out, PrintStream err) {
        QemuIoGetopt g = new QemuIoGetopt(argv, "Cq", err);
        boolean cflag = false, qflag = false;
        for (QemuIoGetopt.Opt o : g.options) {
            if (o.option() == 'C') {
                cflag = true;
            } else if (o.option() == 'q') {
                qflag = true;
            }
        }
        if (g.error || g.operands.size() != 2) {
            out.println(DISCARD.usage());
            return -22;
        }
        long offset = number(g.operands.get(0), out);
        if (offset < 0) {
            return (int) offset;
        }
        long bytes = number(g.operands.get(1), out);
        if (bytes < 0) {
            return (int) bytes;
        } else if (bytes > MAX_REQUEST_BYTES) {
            out.println("length cannot exceed " + MAX_REQUEST_BYTES + ", given " + g.operands.get(1));
            return -22;
        }
        long t1 = nanoClock.getAsLong();
        if (!inRange(image, offset, bytes)) {
            out.println("discard failed: " + EIO);
            return -5;
        }
        try {
            image.discard(offset, bytes);
        } catch (IOException | RuntimeException e) {
            out.println("discard failed: " + EIO);
            return -5;
        }
        long t2 = nanoClock.getAsLong();
        if (!qflag) {
            printReport("discard", t2 - t1, offset, bytes, bytes, 1, cflag, out);
        }
        return 0;
    }

    // ---------------------------------------------------------------- map / alloc

    /** Allocation of this layer only (like bdrv_is_allocated): 1 allocated, 0 not; pnum[0] = run length. */
    private static int isAllocated(Image image, long offset, long bytes, long[] pnum) throws IOException {
        long size = image.size();
        if (offset >= size || bytes <= 0) {
            pnum[0] = 0;
            return 0;
        }
        BlockStatus st = image.blockStatus(offset, Math.min(bytes, size - offset));
        pnum[0] = Math.min(st.length(), Math.min(bytes, size - offset));
        return st.allocated() ? 1 : 0;
    }

    private static int map(Image image, PrintStream out) {
        long offset = 0;
        long bytes = image.size();
        long[] num = new long[1];
        try {
            while (bytes > 0) {
                int ret = isAllocated(image, offset, bytes, num);
                long run = num[0];
                long o = offset + run;
                long b = bytes - run;
                while (b > 0 && run > 0) {
                    int r2 = isAllocated(image, o, b, num);
                    if (r2 != ret || num[0] == 0) {
                        break;
                    }
                    run += num[0];
                    o += num[0];
                    b -= num[0];
                }
                if (run == 0) {
                    out.println("Unexpected end of image");
                    return -5;
                }
                out.println(cvtstr(run) + " (0x" + Long.toHexString(run) + ") bytes "
                        + (ret != 0 ? "    allocated" : "not allocated") + " at offset " + cvtstr(offset)
                        + " (0x" + Long.toHexString(offset) + ")");
                offset += run;
                bytes -= run;
            }
        } catch (IOException | RuntimeException e) {
            out.println("Failed to get allocation status: " + EIO);
            return -5;
        }
        return 0;
    }

    private static int alloc(Image image, List<String> argv, PrintStream out) {
        long start = number(argv.get(1), out);
        if (start < 0) {
            return (int) start;
        }
        long count = 512;
        if (argv.size() == 3) {
            count = number(argv.get(2), out);
            if (count < 0) {
                return (int) count;
            }
        }
        long offset = start;
        long remaining = count;
        long sumAlloc = 0;
        long[] num = new long[1];
        try {
            while (remaining > 0) {
                int ret = isAllocated(image, offset, remaining, num);
                offset += num[0];
                remaining -= num[0];
                if (ret != 0) {
                    sumAlloc += num[0];
                }
                if (num[0] == 0) {
                    count -= remaining;
                    remaining = 0;
                }
            }
        } catch (IOException | RuntimeException e) {
            out.println("is_allocated failed: " + EIO);
            return -5;
        }
        out.println(sumAlloc + "/" + count + " bytes allocated at offset " + cvtstr(start));
        return 0;
    }

    // ---------------------------------------------------------------- sleep / help

    private static int sleep(List<String> argv, PrintStream out) {
        String a = argv.get(1);
        long ms;
        try {
            ms = a.startsWith("#") ? -1 : Long.decode(a);
            if (ms < 0) {
                throw new NumberFormatException();
            }
        } catch (NumberFormatException e) {
            out.println(a + " is not a valid number");
            return -22;
        }
        try {
            Thread.sleep(Math.max(0, ms));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }

    // ---------------------------------------------------------------- blkdebug breakpoints

    /**
     * break, remove_break, resume and wait_break (qemu-io-cmds.c break_f and the three after it) on the blkdebug
     * layer under the drive's image. Without one QEMU's bdrv_debug_* return -ENOTSUP; the failures print to stdout.
     */
    private static int breakpoint(Image image, CmdInfo ct, List<String> argv, PrintStream out, PrintStream err) {
        io.livemon.image.BlkdebugRules dbg = image.blkdebugRules();
        int ret;
        if (ct == WAIT_BREAK) {
            if (dbg == null) {
                return 0; // QEMU's loop would never end; there is nothing to wait for
            }
            try {
                if (!dbg.awaitSuspended(argv.get(1), WAIT_BREAK_MS)) {
                    err.println("wait_break: no request was suspended as '" + argv.get(1) + "' within "
                            + WAIT_BREAK_MS / 1000 + " s");
                    return -110;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return -4;
            }
            return 0;
        }
        if (ct == BREAK) {
            ret = dbg == null ? -Errno.ENOTSUP.number : dbg.addBreakpoint(argv.get(1), argv.get(2));
            if (ret < 0) {
                out.println("Could not set breakpoint: " + strerror(ret));
            }
        } else if (ct == REMOVE_BREAK) {
            ret = dbg == null ? -Errno.ENOTSUP.number : dbg.removeBreakpoint(argv.get(1));
            if (ret < 0) {
                out.println("Could not remove breakpoint " + argv.get(1) + ": " + strerror(ret));
            }
        } else {
            ret = dbg == null ? -Errno.ENOTSUP.number : dbg.resume(argv.get(1));
            if (ret < 0) {
                out.println("Could not resume request: " + strerror(ret));
            }
        }
        return ret;
    }

    private static String strerror(int negErrno) {
        Errno e = Errno.ofNumber(-negErrno);
        return e != null ? e.strerror : "Unknown error " + -negErrno;
    }

    private static int help(List<String> argv, PrintStream out) {
        if (argv.size() == 2) {
            CmdInfo ct = find(argv.get(1));
            if (ct == null) {
                out.println("command " + argv.get(1) + " not found");
                return -22;
            }
            out.println(oneline(argv.get(1), ct));
            return 0;
        }
        for (String line : HELP_ALL) {
            out.println(line);
        }
        out.println();
        out.println("Use 'help commandname' for extended help.");
        return 0;
    }

    private static String oneline(String cmd, CmdInfo ct) {
        StringBuilder sb = new StringBuilder();
        sb.append(cmd == null ? ct.name() : cmd).append(' ');
        if (ct.args() != null) {
            sb.append(ct.args()).append(' ');
        }
        return sb.append("-- ").append(ct.oneline()).toString();
    }

    // ---------------------------------------------------------------- helpers

    private static boolean inRange(Image image, long offset, long bytes) {
        long len = image.size();
        return offset <= len && len - offset >= bytes;
    }

    /** cvtnum + print_cvtnum_err: the value, or a negative errno after printing the parse error. */
    static long number(String arg, PrintStream out) {
        SizeParser.Result r = SizeParser.cvtnum(arg);
        if (r.warning() != null) {
            out.println("warning: " + r.warning()); // inside HMP, warn_report goes to the monitor
        }
        return switch (r.status()) {
            case OK -> r.value();
            case RANGE -> {
                out.println("Parsing error: argument too large -- " + arg);
                yield -34;
            }
            default -> {
                out.println("Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- " + arg);
                yield -22;
            }
        };
    }

    /** qemu-io's pattern byte: strtol base 0, 0..255, whole string; "" counts as 0. */
    static int parsePattern(String arg, PrintStream out) {
        long v;
        int end;
        String s = arg;
        int p = 0;
        while (p < s.length() && SizeParser.isCSpace(s.charAt(p))) {
            p++;
        }
        boolean neg = false;
        if (p < s.length() && (s.charAt(p) == '+' || s.charAt(p) == '-')) {
            neg = s.charAt(p) == '-';
            p++;
        }
        int base = 10;
        if (p < s.length() && s.charAt(p) == '0') {
            if (p + 2 < s.length() + 0 && (s.charAt(p + 1) == 'x' || s.charAt(p + 1) == 'X')
                    && Character.digit(s.charAt(p + 2), 16) >= 0) {
                base = 16;
                p += 2;
            } else {
                base = 8;
            }
        }
        int ds = p;
        java.math.BigInteger acc = java.math.BigInteger.ZERO;
        while (p < s.length() && s.charAt(p) < 128 && Character.digit(s.charAt(p), base) >= 0) {
            acc = acc.multiply(java.math.BigInteger.valueOf(base))
                    .add(java.math.BigInteger.valueOf(Character.digit(s.charAt(p), base)));
            p++;
        }
        if (p == ds) {
            v = 0;
            end = 0;
        } else {
            v = acc.bitLength() > 62 ? Long.MAX_VALUE : acc.longValue();
            if (neg) {
                v = -v;
            }
            end = p;
        }
        if (v < 0 || v > 255 || end != s.length()) {
            out.println(arg + " is not a valid pattern byte");
            return -1;
        }
        return (int) v;
    }

    private void printReport(String op, long nanos, long offset, long count, long total, int cnt, boolean cflag,
                             PrintStream out) {
        long sec = nanos / 1_000_000_000L;
        long nsec = nanos % 1_000_000_000L;
        double secs = sec + nsec / 1e9;
        String ts = timestr(sec, nsec, cflag);
        if (!cflag) {
            out.println(op + " " + total + "/" + count + " bytes at offset " + offset);
            out.println(cvtstr(total) + ", " + cnt + " ops; " + ts + " (" + cvtstr(total / secs) + "/sec and "
                    + fixed(cnt / secs, 4) + " ops/sec)");
        } else {
            out.println(total + "," + cnt + "," + ts + "," + fixed(total / secs, 3) + "," + fixed(cnt / secs, 3));
        }
    }

    static String timestr(long sec, long nsec, boolean verbose) {
        double frac = nsec / 1e9;
        if (verbose || sec != 0) {
            return (sec / 3600) + ":" + String.format(Locale.ROOT, "%02d", (sec % 3600) / 60) + ":"
                    + pad5(fixed((sec % 60) + frac, 2));
        }
        return pad5(fixed(frac, 2)) + " sec";
    }

    private static String pad5(String s) {
        StringBuilder sb = new StringBuilder(s);
        while (sb.length() < 5) {
            sb.insert(0, '0');
        }
        return sb.toString();
    }

    /** C's %.Nf: exact binary value, round half to even. */
    static String fixed(double v, int digits) {
        if (Double.isNaN(v)) {
            return "-nan";
        }
        if (Double.isInfinite(v)) {
            return v > 0 ? "inf" : "-inf";
        }
        return new BigDecimal(v).setScale(digits, RoundingMode.HALF_EVEN).toPlainString();
    }

    /** qemu's cvtstr: "32 MiB", "1.500 KiB", "21.062 MiB", "512 bytes". */
    public static String cvtstr(double value) {
        String[] suffixes = {" EiB", " PiB", " TiB", " GiB", " MiB", " KiB"};
        String str = null;
        String suffix = " bytes";
        for (int i = 0; i < suffixes.length; i++) {
            double unit = Math.pow(2, 10 * (6 - i));
            if (value >= unit) {
                suffix = suffixes[i];
                str = fixed(value / unit, 3);
                break;
            }
        }
        if (str == null) {
            str = fixed(value, 6);
        }
        int trim = str.indexOf(".000");
        return trim >= 0 ? str.substring(0, trim) + suffix : str + suffix;
    }
}
