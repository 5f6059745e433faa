package io.livemon.monitor;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Every expected string below was checked against QEMU 7.2.22's HMP (-M none -monitor stdio). */
class ArgumentParserTest {

    static final ArgSpec STREAM = ArgSpec.parse("device:B,speed:o?,base:s?");
    static final ArgSpec STREAM_LIVEMON = STREAM.withSizeOrString("speed");
    static final ArgSpec SET_SPEED = ArgSpec.parse("device:B,speed:o");
    static final ArgSpec CANCEL = ArgSpec.parse("force:-f,device:B");
    static final ArgSpec SNAPSHOT = ArgSpec.parse("reuse:-n,device:B,snapshot-file:s?,format:s?");
    static final ArgSpec MIRROR = ArgSpec.parse("reuse:-n,full:-f,device:B,target:s,format:s?");
    static final ArgSpec INFO_BLOCK = ArgSpec.parse("nodes:-n,verbose:-v,device:B?");
    static final ArgSpec THROTTLE = ArgSpec.parse("device:B,bps:l,bps_rd:l,bps_wr:l,iops:l,iops_rd:l,iops_wr:l");
    static final ArgSpec CHANGE = ArgSpec.parse("device:B,force:-f,target:F,arg:s?,read-only-mode:s?");

    static ParsedArgs ok(String cmd, ArgSpec spec, String rest) throws ArgumentParseException {
        return ArgumentParser.parse(cmd, spec, rest);
    }

    static String err(String cmd, ArgSpec spec, String rest) {
        try {
            ArgumentParser.parse(cmd, spec, rest);
        } catch (ArgumentParseException e) {
            return e.getMessage();
        }
        throw new AssertionError("parsed: " + rest);
    }

    static ArgumentParseException ex(String cmd, ArgSpec spec, String rest) {
        try {
            ArgumentParser.parse(cmd, spec, rest);
        } catch (ArgumentParseException e) {
            return e;
        }
        throw new AssertionError("parsed: " + rest);
    }

    @Test
    void specParsing() {
        assertThat(SNAPSHOT.params()).extracting(ArgSpec.Param::name)
                .containsExactly("reuse", "device", "snapshot-file", "format");
        assertThat(SNAPSHOT.params().get(0).type()).isEqualTo('-');
        assertThat(SNAPSHOT.params().get(0).flag()).isEqualTo('n');
        assertThat(SNAPSHOT.params().get(2).optional()).isTrue();
        assertThat(ArgSpec.parse("").params()).isEmpty();
        assertThat(ArgSpec.parse("name:S?").params().get(0).type()).isEqualTo('S');
    }

    @Test
    void blockStreamSizes() throws Exception {
        ParsedArgs a = ok("block_stream", STREAM, "virtio0 1Q");
        assertThat(a.getString("device")).isEqualTo("virtio0");
        assertThat(a.getLong("speed")).isEqualTo(1048576L);
        assertThat(a.getString("base")).isEqualTo("Q");
        assertThat(ok("block_stream", STREAM, "virtio0 12x").getString("base")).isEqualTo("x");
        assertThat(ok("block_stream", STREAM, "virtio0 1e3").getString("base")).isEqualTo("3");
        assertThat(ok("block_stream", STREAM, "virtio0 0x").getString("base")).isEqualTo("x");
        assertThat(ok("block_stream", STREAM, "virtio0 1 \"a b\"").getString("base")).isEqualTo("a b");
        ParsedArgs none = ok("block_stream", STREAM, "virtio0");
        assertThat(none.has("speed")).isFalse();
        assertThat(none.getLong("speed")).isNull();
        assertThat(none.getString("base")).isNull();
        assertThat(ok("block_stream", STREAM, "\"virtio0\"1").getLong("speed")).isEqualTo(1048576L);
    }

    @Test
    void sizeErrors() {
        assertThat(err("block_stream", STREAM, "virtio0 file-A.img")).isEqualTo("invalid size");
        assertThat(err("block_stream", STREAM, "virtio0 -5")).isEqualTo("invalid size");
        assertThat(err("block_stream", STREAM, "virtio0 1.5e3")).isEqualTo("invalid size");
        assertThat(err("block_stream", STREAM, "virtio0 1.5B")).isEqualTo("invalid size");
        assertThat(err("block_job_set_speed", SET_SPEED, "virtio0 fast")).isEqualTo("invalid size");
        assertThat(err("block_job_set_speed", SET_SPEED, "virtio0")).isEqualTo("invalid size");
        assertThat(err("block_job_set_speed", SET_SPEED, "virtio0 \"5\"")).isEqualTo("invalid size");
        assertThat(err("block_job_set_speed", SET_SPEED, "virtio0 8E")).isEqualTo("invalid size");
        assertThat(err("block_job_set_speed", SET_SPEED, "virtio0 .5k")).isEqualTo("invalid size");
        for (String s : new String[] {"1KiB", "1 k", "10X", "1e3"}) {
            assertThat(err("block_job_set_speed", SET_SPEED, "virtio0 " + s))
                    .isEqualTo("block_job_set_speed: extraneous characters at the end of line");
        }
        assertThat(err("block_stream", STREAM, "virtio0 0x10k x y"))
                .isEqualTo("block_stream: extraneous characters at the end of line");
    }

    @Test
    void hexSuffixWarningGoesToStderr() throws Exception {
        ParsedArgs a = ok("block_job_set_speed", SET_SPEED, "virtio0 0x10k");
        assertThat(a.getLong("speed")).isEqualTo(16384L);
        assertThat(a.stderrWarnings())
                .containsExactly("warning: Using a multiplier suffix on hex numbers is deprecated: 0x10k");
        assertThat(ex("block_stream", STREAM, "virtio0 0x10k x y").stderrWarnings())
                .containsExactly("warning: Using a multiplier suffix on hex numbers is deprecated: 0x10k x y");
    }

    @Test
    void livemonBaseExtension() throws Exception {
        ParsedArgs a = ok("block_stream", STREAM_LIVEMON, "virtio0 file-A.img");
        assertThat(a.has("speed")).isFalse();
        assertThat(a.getString("base")).isEqualTo("file-A.img");
        assertThat(ok("block_stream", STREAM_LIVEMON, "virtio0 abc").getString("base")).isEqualTo("abc");
        assertThat(ok("block_stream", STREAM_LIVEMON, "virtio0 1Q").getString("base")).isEqualTo("Q");
        assertThat(ok("block_stream", STREAM_LIVEMON, "virtio0 12x").getLong("speed")).isEqualTo(12L << 20);
        assertThat(ok("block_stream", STREAM_LIVEMON, "virtio0 0 file-A.img").getString("base"))
                .isEqualTo("file-A.img");
        assertThat(err("block_stream", STREAM_LIVEMON, "virtio0 -5")).isEqualTo("invalid size");
        assertThat(err("block_stream", STREAM_LIVEMON, "virtio0 \"5\"")).isEqualTo("invalid size");
        assertThat(err("block_stream", STREAM_LIVEMON, "virtio0 abc def"))
                .isEqualTo("block_stream: extraneous characters at the end of line");
        // without the extension, QEMU's own behaviour
        assertThat(err("block_stream", STREAM, "virtio0 abc")).isEqualTo("invalid size");
    }

    @Test
    void missingArguments() {
        assertThat(err("block_stream", STREAM, "")).isEqualTo("block_stream: block device name expected");
        assertThat(err("commit", ArgSpec.parse("device:B"), "  ")).isEqualTo("commit: block device name expected");
        assertThat(err("drive_mirror", MIRROR, "virtio0")).isEqualTo("drive_mirror: string expected");
        assertThat(err("change", CHANGE, "virtio0")).isEqualTo("change: filename expected");
        assertThat(err("block_job_pause", ArgSpec.parse("device:B"), "a b"))
                .isEqualTo("block_job_pause: extraneous characters at the end of line");
    }

    @Test
    void quotedStrings() throws Exception {
        ArgSpec dev = ArgSpec.parse("device:B");
        assertThat(ok("block_job_pause", dev, "\"a\\nb\"").getString("device")).isEqualTo("a\nb");
        assertThat(ok("block_job_pause", dev, "\"a\\\"b\\\\c\\'\"").getString("device")).isEqualTo("a\"b\\c'");
        ArgumentParseException u = ex("block_job_pause", dev, "\"abc");
        assertThat(u.getMessage()).isEqualTo("block_job_pause: block device name expected");
        assertThat(u.stdoutLines()).containsExactly("unterminated string");
        ArgumentParseException t = ex("block_job_pause", dev, "\"a\\tb\"");
        assertThat(t.stdoutLines()).containsExactly("unsupported escape code: '\\t'");
        assertThat(t.getMessage()).isEqualTo("block_job_pause: block device name expected");
        assertThat(err("block_job_pause", dev, "\"a\\\"b\"x"))
                .isEqualTo("block_job_pause: extraneous characters at the end of line");
        ArgumentParseException qio = ex("qemu-io", ArgSpec.parse("qdev:-d,device:B,command:s"),
                "virtio0 \"read  0\\t 1\"");
        assertThat(qio.stdoutLines()).containsExactly("unsupported escape code: '\\t'");
        assertThat(qio.getMessage()).isEqualTo("qemu-io: string expected");
    }

    @Test
    void flags() throws Exception {
        assertThat(ok("block_job_cancel", CANCEL, "-f virtio0").getFlag("force")).isTrue();
        assertThat(ok("block_job_cancel", CANCEL, "virtio0").getFlag("force")).isFalse();
        assertThat(ok("block_job_cancel", CANCEL, "-fvirtio0").getString("device")).isEqualTo("virtio0");
        assertThat(err("block_job_cancel", CANCEL, "-x virtio0")).isEqualTo("block_job_cancel: unsupported option -x");
        assertThat(err("block_job_cancel", CANCEL, "--")).isEqualTo("block_job_cancel: unsupported option --");
        ArgumentParseException lone = ex("block_job_cancel", CANCEL, "-");
        assertThat(lone.getMessage()).isEqualTo("block_job_cancel: unsupported option -");
        assertThat(lone.isUnterminated()).isTrue();
        assertThat(err("block", INFO_BLOCK, "-x")).isEqualTo("block: unsupported option -x");
        ParsedArgs both = ok("block", INFO_BLOCK, "-n -v virtio0");
        assertThat(both.getFlag("nodes")).isTrue();
        assertThat(both.getFlag("verbose")).isTrue();
        // flags only at their position: "-v -n" makes "-n" the device
        ParsedArgs swapped = ok("block", INFO_BLOCK, "-v -n");
        assertThat(swapped.getFlag("nodes")).isFalse();
        assertThat(swapped.getFlag("verbose")).isTrue();
        assertThat(swapped.getString("device")).isEqualTo("-n");
        // combined flags are not supported: "-nv" is -n then the word "v"
        ParsedArgs combined = ok("block", INFO_BLOCK, "-nv");
        assertThat(combined.getFlag("nodes")).isTrue();
        assertThat(combined.getFlag("verbose")).isFalse();
        assertThat(combined.getString("device")).isEqualTo("v");
        assertThat(ok("drive_mirror", MIRROR, "-nf virtio0 x").getString("device")).isEqualTo("f");
        // "-f" occurs inside "snapshot-file": the word falls through to the device
        ParsedArgs snap = ok("snapshot_blkdev", SNAPSHOT, "-f virtio0");
        assertThat(snap.getString("device")).isEqualTo("-f");
        assertThat(snap.getString("snapshot-file")).isEqualTo("virtio0");
        ParsedArgs ch = ok("change", CHANGE, "virtio0 -f x.img");
        assertThat(ch.getFlag("force")).isTrue();
        assertThat(ch.getString("target")).isEqualTo("x.img");
    }

    @Test
    void integerExpressions() throws Exception {
        ParsedArgs a = ok("block_set_io_throttle", THROTTLE, "virtio0 2+3*4 0 0 0 0 0");
        assertThat(a.getLong("bps")).isEqualTo(14L);
        ParsedArgs b = ok("block_set_io_throttle", THROTTLE, "virtio0 1 -1 2 3 4 5 6");
        assertThat(b.getLong("bps")).isZero();
        assertThat(b.getLong("bps_rd")).isEqualTo(2L);
        assertThat(b.getLong("iops_wr")).isEqualTo(6L);
        assertThat(ok("block_set_io_throttle", THROTTLE, "virtio0 0x10 010 'a' (1+1)*2 ~0 6|1")
                .asMap().values()).containsExactly("virtio0", 16L, 8L, 97L, 4L, -1L, 7L);
        assertThat(ok("block_set_io_throttle", THROTTLE, "virtio0 1+2&3 0 0 0 0 0").getLong("bps")).isEqualTo(3L);
        String t = "block_set_io_throttle";
        assertThat(err(t, THROTTLE, "virtio0 1M 0 0 0 0 0")).isEqualTo("invalid char 'M' in expression");
        assertThat(err(t, THROTTLE, "virtio0 1 2 3 4 5")).isEqualTo("unexpected end of expression");
        assertThat(err(t, THROTTLE, "virtio0 (1 0 0 0 0 0")).isEqualTo("')' expected");
        assertThat(err(t, THROTTLE, "virtio0 5/0 0 0 0 0 0")).isEqualTo("division by zero");
        assertThat(err(t, THROTTLE, "virtio0 'a 0 0 0 0 0")).isEqualTo("missing terminating ' character");
        assertThat(err(t, THROTTLE, "virtio0 'ab' 0 0 0 0 0")).isEqualTo("missing terminating ' character");
        assertThat(err(t, THROTTLE, "virtio0 $pc 0 0 0 0 0")).isEqualTo("unknown register");
        assertThat(err(t, THROTTLE, "virtio0 99999999999999999999 0 0 0 0 0")).isEqualTo("number too large");
        assertThat(err(t, THROTTLE, "virtio0 0x 0 0 0 0 0")).isEqualTo("invalid char 'x' in expression");
        assertThat(err(t, THROTTLE, "virtio0 1000000 0 0 0 0 0 0"))
                .isEqualTo("block_set_io_throttle: extraneous characters at the end of line");
        ArgSpec cpu = ArgSpec.parse("index:i");
        assertThat(err("cpu", cpu, "0x100000000")).isEqualTo("'cpu' has failed: integer is for 32-bit values");
        assertThat(err("cpu", cpu, "1+")).isEqualTo("unexpected end of expression");
    }

    @Test
    void otherTypes() throws Exception {
        ArgSpec link = ArgSpec.parse("name:s,up:b");
        assertThat(err("set_link", link, "x maybe")).isEqualTo("Expected 'on' or 'off'");
        assertThat(ok("set_link", link, "x on").getFlag("up")).isTrue();
        assertThat(ok("set_link", link, "x off").has("up")).isTrue();
        ArgSpec help = ArgSpec.parse("name:S?");
        assertThat(ok("help", help, "  info block  ").getString("name")).isEqualTo("info block  ");
        assertThat(ok("help", help, "").has("name")).isFalse();
        assertThat(ok("info", ArgSpec.parse(""), "  ").asMap()).isEmpty();
        assertThat(err("block-jobs", ArgSpec.parse(""), "x"))
                .isEqualTo("block-jobs: extraneous characters at the end of line");
    }
}
