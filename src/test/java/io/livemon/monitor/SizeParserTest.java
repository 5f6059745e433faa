package io.livemon.monitor;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** Expected values verified against QEMU 7.2.22 (block_job_set_speed / block_stream / qemu-io). */
class SizeParserTest {

    private static long mib(String s) {
        SizeParser.Result r = SizeParser.parseMiB(s);
        assertThat(r.ok()).as(s).isTrue();
        assertThat(r.end()).as(s).isEqualTo(s.length());
        return r.value();
    }

    @Test
    void plainNumbersAreMiB() {
        assertThat(mib("1")).isEqualTo(1048576);
        assertThat(mib("0.5")).isEqualTo(524288);
        assertThat(mib("010")).isEqualTo(10485760);
        assertThat(mib("5.")).isEqualTo(5242880);
        assertThat(mib("0.00009")).isEqualTo(94);
        assertThat(mib("0")).isZero();
        assertThat(mib("+5")).isEqualTo(5242880);
    }

    @Test
    void suffixes() {
        assertThat(mib("100k")).isEqualTo(102400);
        assertThat(mib("100K")).isEqualTo(102400);
        assertThat(mib("512B")).isEqualTo(512);
        assertThat(mib("1.5m")).isEqualTo(1572864);
        assertThat(mib("2G")).isEqualTo(2147483648L);
        assertThat(mib("1E")).isEqualTo(1152921504606846976L);
        assertThat(mib("1.5e")).isEqualTo(1729382256910270464L);
    }

    @Test
    void hex() {
        assertThat(mib("0x10")).isEqualTo(16777216);
        assertThat(mib("0x1e")).isEqualTo(30L << 20); // e and b are hex digits, not suffixes
        assertThat(mib("0x10B")).isEqualTo(0x10BL << 20);
        assertThat(SizeParser.parseMiB("0x10B").warning()).isNull();
        SizeParser.Result r = SizeParser.parseMiB("0x10k x y");
        assertThat(r.value()).isEqualTo(16384);
        assertThat(r.end()).isEqualTo(5);
        assertThat(r.warning()).isEqualTo("Using a multiplier suffix on hex numbers is deprecated: 0x10k x y");
        SizeParser.Result bare = SizeParser.parseMiB("0x");
        assertThat(bare.ok()).isTrue();
        assertThat(bare.value()).isZero();
        assertThat(bare.end()).isEqualTo(1);
    }

    @Test
    void invalid() {
        for (String s : new String[] {"", ".5k", "-1", "-5", "\"5\"", "fast", "file-A.img", "1.5e3", "1.5B",
                "0x10.5"}) {
            assertThat(SizeParser.parseMiB(s).ok()).as(s).isFalse();
        }
        assertThat(SizeParser.parseMiB("8E").status()).isEqualTo(SizeParser.Status.RANGE);
        assertThat(SizeParser.parseMiB("16E").status()).isEqualTo(SizeParser.Status.RANGE);
        assertThat(SizeParser.parseMiB("99999999999999999999").status()).isEqualTo(SizeParser.Status.RANGE);
    }

    @Test
    void stopsAtTheLongestValidPrefix() {
        assertThat(SizeParser.parseMiB("1Q").end()).isEqualTo(1);
        assertThat(SizeParser.parseMiB("12x").end()).isEqualTo(2);
        assertThat(SizeParser.parseMiB("1KiB").end()).isEqualTo(2);
        SizeParser.Result e3 = SizeParser.parseMiB("1e3");
        assertThat(e3.value()).isEqualTo(1L << 60);
        assertThat(e3.end()).isEqualTo(2);
        SizeParser.Result dote = SizeParser.parseMiB("1.e5");
        assertThat(dote.value()).isEqualTo(1L << 60);
        assertThat(dote.end()).isEqualTo(3);
    }

    @Test
    void qemuIoNumbersAreBytesAndMustBeWhole() {
        assertThat(SizeParser.cvtnum("512").value()).isEqualTo(512);
        assertThat(SizeParser.cvtnum("1.5k").value()).isEqualTo(1536);
        assertThat(SizeParser.cvtnum("1M").value()).isEqualTo(1048576);
        assertThat(SizeParser.cvtnum("0x10").value()).isEqualTo(16);
        assertThat(SizeParser.cvtnum("1.5").status()).isEqualTo(SizeParser.Status.INVALID);
        assertThat(SizeParser.cvtnum("0x").status()).isEqualTo(SizeParser.Status.INVALID);
        assertThat(SizeParser.cvtnum("1KiB").status()).isEqualTo(SizeParser.Status.INVALID);
        assertThat(SizeParser.cvtnum("8E").status()).isEqualTo(SizeParser.Status.RANGE);
        assertThat(SizeParser.cvtnum("99999999999999999999").status()).isEqualTo(SizeParser.Status.RANGE);
        SizeParser.Result w = SizeParser.cvtnum("0x10k");
        assertThat(w.value()).isEqualTo(16384);
        assertThat(w.warning()).isEqualTo("Using a multiplier suffix on hex numbers is deprecated: 0x10k");
    }
}
