package io.livemon.monitor;

import java.math.BigDecimal;
import java.math.BigInteger;

/**
 * QEMU 7.2's size parser ({@code qemu_strtosz} family), re-implemented from its observed behaviour.
 *
 * <p>The integral part is decimal (or hex after {@code 0x}); an optional fraction follows a '.'; one optional
 * suffix letter B/K/M/G/T/P/E (any case) scales the value, otherwise the default unit applies (MiB for monitor
 * sizes, bytes for qemu-io). Parsing stops after the suffix and the caller decides what to do with the rest:
 * the monitor hands it to the next argument, qemu-io rejects it.
 */
public final class SizeParser {

    /** How a parse ended. */
    public enum Status {
        OK,
        /** QEMU's -EINVAL: no number, a negative sign, a fraction without a scale, an exponent, ... */
        INVALID,
        /** QEMU's -ERANGE, and every value above INT64_MAX. */
        RANGE
    }

    /**
     * The outcome of one parse.
     *
     * @param status  OK when {@code value} is usable
     * @param value   the size in bytes (0..INT64_MAX) when OK
     * @param end     index in the parsed text where parsing stopped (only meaningful when OK)
     * @param warning a deprecation warning QEMU would print on stderr, without any program prefix
     *                (e.g. {@code Using a multiplier suffix on hex numbers is deprecated: 0x10k}), or null. It is
     *                produced even when the parse fails afterwards.
     */
    public record Result(Status status, long value, int end, String warning) {
        public boolean ok() {
            return status == Status.OK;
        }
    }

    private static final BigInteger TWO_64 = BigInteger.ONE.shiftLeft(64);
    private static final BigInteger INT64_MAX = BigInteger.valueOf(Long.MAX_VALUE);

    private SizeParser() {
    }

    /**
     * A monitor size argument (args_type {@code o}): default unit MiB, parsed from {@code text} at {@code start};
     * the rest after {@link Result#end()} belongs to the next argument. Anything not OK is "invalid size".
     */
    public static Result parseMiB(String text, int start) {
        return parse(text, start, 'M', 1024);
    }

    /** Convenience: {@link #parseMiB(String, int)} from index 0. */
    public static Result parseMiB(String text) {
        return parseMiB(text, 0);
    }

    /**
     * qemu-io's {@code cvtnum}: default unit bytes, the whole string must be consumed (trailing text is
     * INVALID, which wins over RANGE).
     */
    public static Result cvtnum(String text) {
        Result r = parse(text, 0, 'B', 1024);
        if (r.end() < text.length()) {
            return new Result(Status.INVALID, 0, r.end(), r.warning());
        }
        return r;
    }

    /**
     * The general parser: {@code defaultSuffix} is the unit letter applied without a suffix, {@code unit} the
     * step between suffixes (1024). Values above INT64_MAX are reported as RANGE.
     */
    public static Result parse(String text, int start, char defaultSuffix, long unit) {
        StrtoullResult dec = strtoull(text, start, 10);
        if (dec.noConversion) {
            return new Result(Status.INVALID, 0, start, null);
        }
        if (dec.overflow) {
            return new Result(Status.RANGE, 0, dec.end, null);
        }
        if (text.substring(start, dec.end).indexOf('-') >= 0) {
            return new Result(Status.INVALID, 0, start, null);
        }
        BigInteger val = dec.value;
        int end = dec.end;
        boolean hex = false;
        BigInteger valf = BigInteger.ZERO;
        char c = charAt(text, end);
        if (val.signum() == 0 && (c == 'x' || c == 'X')) {
            StrtoullResult hx = strtoull(text, start, 16);
            if (hx.noConversion) {
                return new Result(Status.INVALID, 0, start, null);
            }
            if (hx.overflow) {
                return new Result(Status.RANGE, 0, hx.end, null);
            }
            val = hx.value;
            end = hx.end;
            if (charAt(text, end) == '.') {
                return new Result(Status.INVALID, 0, start, null);
            }
            hex = true;
        } else if (c == '.') {
            // strtod on ".digits[e[+-]digits]"
            int f = end;
            int p = f + 1;
            while (isDigit(charAt(text, p))) {
                p++;
            }
            if (p == f + 1) {
                end = f + 1; // no conversion: QEMU skips the '.'
            } else {
                boolean exponent = false;
                int q = p;
                if (charAt(text, q) == 'e' || charAt(text, q) == 'E') {
                    q++;
                    if (charAt(text, q) == '+' || charAt(text, q) == '-') {
                        q++;
                    }
                    if (isDigit(charAt(text, q))) {
                        exponent = true;
                    }
                }
                if (exponent) {
                    return new Result(Status.INVALID, 0, start, null);
                }
                double fraction = Double.parseDouble("0" + text.substring(f, p));
                if (fraction != 0 && fraction < Double.MIN_NORMAL) {
                    end = p + 1; // strtod ERANGE (underflow): QEMU steps one past the number
                } else {
                    end = p;
                    if (fraction < 1.0) {
                        valf = new BigDecimal(fraction).multiply(new BigDecimal(TWO_64)).toBigInteger();
                    } // 1.0 (rounded up) converts to 0 on x86-64
                }
            }
        }
        String warning = null;
        long mul = suffixMul(charAt(text, end), unit);
        if (mul > 0) {
            if (hex) {
                warning = "Using a multiplier suffix on hex numbers is deprecated: " + text.substring(start);
            }
            end++;
        } else {
            mul = suffixMul(defaultSuffix, unit);
        }
        BigInteger result;
        if (mul == 1) {
            if (valf.signum() != 0) {
                return new Result(Status.INVALID, 0, start, warning);
            }
            result = val;
        } else {
            BigInteger m = BigInteger.valueOf(mul);
            BigInteger frac = valf.multiply(m);
            result = val.multiply(m).add(frac.shiftRight(64)).add(frac.testBit(63) ? BigInteger.ONE : BigInteger.ZERO);
            if (result.compareTo(TWO_64) >= 0) {
                return new Result(Status.RANGE, 0, end, warning);
            }
        }
        if (result.compareTo(INT64_MAX) > 0) {
            return new Result(Status.RANGE, 0, end, warning);
        }
        return new Result(Status.OK, result.longValue(), end, warning);
    }

    static long suffixMul(char suffix, long unit) {
        switch (Character.toUpperCase(suffix)) {
            case 'B':
                return 1;
            case 'K':
                return unit;
            case 'M':
                return unit * unit;
            case 'G':
                return unit * unit * unit;
            case 'T':
                return unit * unit * unit * unit;
            case 'P':
                return unit * unit * unit * unit * unit;
            case 'E':
                return unit * unit * unit * unit * unit * unit;
            default:
                return -1;
        }
    }

    private record StrtoullResult(BigInteger value, int end, boolean noConversion, boolean overflow) {
    }

    /** C strtoull semantics (leading white space, sign, 0x prefix for base 16, wrap-around negation). */
    private static StrtoullResult strtoull(String s, int start, int base) {
        int p = start;
        while (isCSpace(charAt(s, p))) {
            p++;
        }
        boolean neg = false;
        if (charAt(s, p) == '+' || charAt(s, p) == '-') {
            neg = charAt(s, p) == '-';
            p++;
        }
        if (base == 16 && charAt(s, p) == '0' && (charAt(s, p + 1) == 'x' || charAt(s, p + 1) == 'X')
                && Character.digit(charAt(s, p + 2), 16) >= 0 && charAt(s, p + 2) < 128) {
            p += 2;
        }
        int digitsStart = p;
        BigInteger v = BigInteger.ZERO;
        BigInteger b = BigInteger.valueOf(base);
        while (p < s.length() && s.charAt(p) < 128 && Character.digit(s.charAt(p), base) >= 0) {
            v = v.multiply(b).add(BigInteger.valueOf(Character.digit(s.charAt(p), base)));
            p++;
        }
        if (p == digitsStart) {
            return new StrtoullResult(BigInteger.ZERO, start, true, false);
        }
        if (v.compareTo(TWO_64) >= 0) {
            return new StrtoullResult(TWO_64.subtract(BigInteger.ONE), p, false, true);
        }
        if (neg && v.signum() != 0) {
            v = TWO_64.subtract(v);
        }
        return new StrtoullResult(v, p, false, false);
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    static boolean isCSpace(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == 0x0b || c == '\f' || c == '\r';
    }

    private static char charAt(String s, int i) {
        return i < s.length() ? s.charAt(i) : '\0';
    }
}
