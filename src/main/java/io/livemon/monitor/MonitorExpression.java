package io.livemon.monitor;

/**
 * The integer expressions of monitor arguments of type i/l/M: numbers in C notation (decimal, 0x hex, 0 octal),
 * 'c' character constants, unary + - ~, and binary operators in three levels: * / % bind tightest, then
 * & | ^, then + -; parentheses; white space anywhere. $registers are never available in livemon.
 */
final class MonitorExpression {

    static final class ExprError extends Exception {
        ExprError(String message) {
            super(message);
        }
    }

    private final String s;
    private int pch;

    MonitorExpression(String s, int start) {
        this.s = s;
        this.pch = start;
    }

    int position() {
        return pch;
    }

    long evaluate() throws ExprError {
        while (SizeParser.isCSpace(at(pch))) {
            pch++;
        }
        return sum();
    }

    private char at(int i) {
        return i < s.length() ? s.charAt(i) : '\0';
    }

    private void next() {
        if (at(pch) != '\0') {
            pch++;
            while (SizeParser.isCSpace(at(pch))) {
                pch++;
            }
        }
    }

    private long sum() throws ExprError {
        long val = logic();
        for (;;) {
            char op = at(pch);
            if (op != '+' && op != '-') {
                return val;
            }
            next();
            long val2 = logic();
            val = op == '+' ? val + val2 : val - val2;
        }
    }

    private long logic() throws ExprError {
        long val = prod();
        for (;;) {
            char op = at(pch);
            if (op != '&' && op != '|' && op != '^') {
                return val;
            }
            next();
            long val2 = prod();
            switch (op) {
                case '&' -> val &= val2;
                case '|' -> val |= val2;
                default -> val ^= val2;
            }
        }
    }

    private long prod() throws ExprError {
        long val = unary();
        for (;;) {
            char op = at(pch);
            if (op != '*' && op != '/' && op != '%') {
                return val;
            }
            next();
            long val2 = unary();
            if (op == '*') {
                val *= val2;
            } else {
                if (val2 == 0) {
                    throw new ExprError("division by zero");
                }
                val = op == '/' ? val / val2 : val % val2;
            }
        }
    }

    private long unary() throws ExprError {
        char c = at(pch);
        switch (c) {
            case '+':
                next();
                return unary();
            case '-':
                next();
                return -unary();
            case '~':
                next();
                return ~unary();
            case '(': {
                next();
                long n = sum();
                if (at(pch) != ')') {
                    throw new ExprError("')' expected");
                }
                next();
                return n;
            }
            case '\'': {
                pch++;
                if (at(pch) == '\0') {
                    throw new ExprError("character constant expected");
                }
                long n = at(pch);
                pch++;
                if (at(pch) != '\'') {
                    throw new ExprError("missing terminating ' character");
                }
                next();
                return n;
            }
            case '$':
                throw new ExprError("unknown register");
            case '\0':
                throw new ExprError("unexpected end of expression");
            default:
                return number();
        }
    }

    /** strtoull(pch, &end, 0). */
    private long number() throws ExprError {
        int p = pch;
        int base = 10;
        if (at(p) == '0') {
            if ((at(p + 1) == 'x' || at(p + 1) == 'X') && hexDigit(at(p + 2))) {
                base = 16;
                p += 2;
            } else {
                base = 8;
            }
        }
        int digitsStart = p;
        java.math.BigInteger v = java.math.BigInteger.ZERO;
        java.math.BigInteger b = java.math.BigInteger.valueOf(base);
        while (at(p) < 128 && at(p) != '\0' && Character.digit(at(p), base) >= 0) {
            v = v.multiply(b).add(java.math.BigInteger.valueOf(Character.digit(at(p), base)));
            p++;
        }
        if (p == digitsStart) {
            throw new ExprError("invalid char '" + at(pch) + "' in expression");
        }
        if (v.bitLength() > 64) {
            throw new ExprError("number too large");
        }
        pch = p;
        while (SizeParser.isCSpace(at(pch))) {
            pch++;
        }
        return v.longValue();
    }

    private static boolean hexDigit(char c) {
        return c < 128 && Character.digit(c, 16) >= 0;
    }
}
