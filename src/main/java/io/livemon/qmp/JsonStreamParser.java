package io.livemon.qmp;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Splits a character stream into JSON values the way QEMU's QMP input does: values may span lines or share one,
 * strings may be single-quoted (QEMU's extension), and each complete top-level value (or error) is handed on as
 * soon as its last token arrives. Errors carry QEMU's {@code JSON parse error, ...} texts.
 *
 * <p>Memory is bounded: a value longer than {@code maxChars} characters is reported once
 * ({@code JSON token size limit exceeded}) and the rest of it is skipped without being stored; nesting deeper than
 * {@link #MAX_NESTING} is reported and skipped likewise.
 */
final class JsonStreamParser {
    static final int MAX_NESTING = 1024;
    private static final Pattern NUMBER = Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");

    interface Listener {
        void value(Object value);

        void error(String desc);
    }

    private enum Type { LCURLY, RCURLY, LSQUARE, RSQUARE, COMMA, COLON, STRING, NUMBER, KEYWORD }

    private record Token(Type type, String text) {
    }

    private enum LexState { IDLE, STRING, ESCAPE, UNICODE, NUMBER, KEYWORD }

    private final Listener listener;
    private final int maxChars;

    private LexState lex = LexState.IDLE;
    private char quote;
    private final StringBuilder tokenText = new StringBuilder();
    private final StringBuilder raw = new StringBuilder();
    private int unicodeDigits;
    private int unicodeValue;

    private final List<Token> tokens = new ArrayList<>();
    private int braces;
    private int brackets;
    private long chars;
    /** Set after a limit error: the rest of the value is consumed without being kept. */
    private boolean skipping;

    JsonStreamParser(Listener listener, int maxChars) {
        this.listener = listener;
        this.maxChars = maxChars;
    }

    void feed(char c) {
        boolean inValue = !tokens.isEmpty() || lex != LexState.IDLE || skipping;
        if (inValue || !isSpace(c)) {
            chars++;
        }
        if (!skipping && chars > maxChars) {
            listener.error("JSON token size limit exceeded");
            startSkipping();
        }
        switch (lex) {
            case IDLE -> idle(c);
            case STRING -> {
                if (c == quote) {
                    lex = LexState.IDLE;
                    token(Type.STRING, take());
                } else if (c == '\\') {
                    lex = LexState.ESCAPE;
                    keepRaw(c);
                } else if (c < 0x20) {
                    keepRaw(c);
                    lexError();
                } else {
                    keep(c);
                }
            }
            case ESCAPE -> escape(c);
            case UNICODE -> {
                keepRaw(c);
                int d = Character.digit(c, 16);
                if (d < 0) {
                    lexError();
                    return;
                }
                unicodeValue = unicodeValue * 16 + d;
                if (++unicodeDigits == 4) {
                    keepDecoded((char) unicodeValue);
                    lex = LexState.STRING;
                }
            }
            case NUMBER -> {
                if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
                    keep(c);
                } else {
                    lex = LexState.IDLE;
                    String text = take();
                    if (skipping || NUMBER.matcher(text).matches()) {
                        token(Type.NUMBER, text);
                    } else {
                        error("JSON parse error, stray '" + text + "'");
                    }
                    idle(c);
                }
            }
            case KEYWORD -> {
                if (Character.isLetterOrDigit(c) || c == '_' || c == '-') {
                    keep(c);
                } else {
                    lex = LexState.IDLE;
                    token(Type.KEYWORD, take());
                    idle(c);
                }
            }
            default -> throw new IllegalStateException();
        }
    }

    private static boolean isSpace(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
    }

    private void idle(char c) {
        if (isSpace(c)) {
            return;
        }
        switch (c) {
            case '{' -> token(Type.LCURLY, "{");
            case '}' -> token(Type.RCURLY, "}");
            case '[' -> token(Type.LSQUARE, "[");
            case ']' -> token(Type.RSQUARE, "]");
            case ',' -> token(Type.COMMA, ",");
            case ':' -> token(Type.COLON, ":");
            case '"', '\'' -> {
                quote = c;
                lex = LexState.STRING;
                raw.setLength(0);
                tokenText.setLength(0);
                keepRaw(c);
            }
            default -> {
                raw.setLength(0);
                tokenText.setLength(0);
                if (c == '-' || (c >= '0' && c <= '9')) {
                    lex = LexState.NUMBER;
                    keep(c);
                } else if (Character.isLetter(c)) {
                    lex = LexState.KEYWORD;
                    keep(c);
                } else {
                    error("JSON parse error, stray '" + c + "'");
                }
            }
        }
    }

    private void escape(char c) {
        keepRaw(c);
        lex = LexState.STRING;
        switch (c) {
            case '"', '\'', '\\', '/' -> keepDecoded(c);
            case 'b' -> keepDecoded('\b');
            case 'f' -> keepDecoded('\f');
            case 'n' -> keepDecoded('\n');
            case 'r' -> keepDecoded('\r');
            case 't' -> keepDecoded('\t');
            case 'u' -> {
                lex = LexState.UNICODE;
                unicodeDigits = 0;
                unicodeValue = 0;
            }
            default -> lexError();
        }
    }

    private void keep(char c) {
        keepRaw(c);
        keepDecoded(c);
    }

    private void keepRaw(char c) {
        if (!skipping && raw.length() < 4096) {
            raw.append(c);
        }
    }

    private void keepDecoded(char c) {
        if (!skipping) {
            tokenText.append(c);
        }
    }

    private String take() {
        String s = tokenText.toString();
        tokenText.setLength(0);
        raw.setLength(0);
        return s;
    }

    private void lexError() {
        String text = raw.toString();
        lex = LexState.IDLE;
        tokenText.setLength(0);
        raw.setLength(0);
        if (skipping) {
            reset();
            return;
        }
        error("JSON parse error, stray '" + text + "'");
    }

    private void error(String desc) {
        boolean wasSkipping = skipping;
        reset();
        if (!wasSkipping) {
            listener.error(desc);
        }
    }

    private void startSkipping() {
        skipping = true;
        tokens.clear();
        tokenText.setLength(0);
        raw.setLength(0);
    }

    private void reset() {
        tokens.clear();
        braces = 0;
        brackets = 0;
        chars = 0;
        skipping = false;
    }

    private void token(Type type, String text) {
        switch (type) {
            case LCURLY -> braces++;
            case RCURLY -> braces--;
            case LSQUARE -> brackets++;
            case RSQUARE -> brackets--;
            default -> {
            }
        }
        if (skipping) {
            if (braces <= 0 && brackets <= 0) {
                reset();
            }
            return;
        }
        tokens.add(new Token(type, text));
        if (braces > MAX_NESTING || brackets > MAX_NESTING) {
            listener.error("JSON nesting depth limit exceeded");
            startSkipping();
            return;
        }
        if (braces <= 0 && brackets <= 0) {
            List<Token> value = new ArrayList<>(tokens);
            reset();
            Object v;
            try {
                Parser p = new Parser(value);
                v = p.value();
            } catch (ParseError e) {
                listener.error("JSON parse error, " + e.getMessage());
                return;
            }
            listener.value(v);
        }
    }

    private static final class ParseError extends Exception {
        ParseError(String m) {
            super(m, null, false, false);
        }
    }

    /** Recursive descent over one value's tokens, with QEMU's messages. */
    private static final class Parser {
        private final List<Token> tokens;
        private int pos;

        Parser(List<Token> tokens) {
            this.tokens = tokens;
        }

        private Token next() {
            return pos < tokens.size() ? tokens.get(pos++) : null;
        }

        private Token peek() {
            return pos < tokens.size() ? tokens.get(pos) : null;
        }

        Object value() throws ParseError {
            Token t = next();
            if (t == null) {
                throw new ParseError("expecting value");
            }
            return switch (t.type()) {
                case LCURLY -> object();
                case LSQUARE -> array();
                case STRING -> t.text();
                case NUMBER -> number(t.text());
                case KEYWORD -> switch (t.text()) {
                    case "true" -> Boolean.TRUE;
                    case "false" -> Boolean.FALSE;
                    case "null" -> Json.NULL;
                    default -> throw new ParseError("invalid keyword '" + t.text() + "'");
                };
                default -> throw new ParseError("expecting value");
            };
        }

        private static Object number(String text) {
            if (!text.contains(".") && !text.contains("e") && !text.contains("E")) {
                try {
                    return Long.parseLong(text);
                } catch (NumberFormatException e) {
                    // QEMU's parser keeps an integer that fits uint64 as an integer (a uint32 parameter then says
                    // "expects uint32_t", an id echoes digit for digit); beyond it the number becomes a double.
                    java.math.BigInteger b = new java.math.BigInteger(text);
                    if (b.signum() > 0 && b.bitLength() <= 64) {
                        return b;
                    }
                    return Double.parseDouble(text);
                }
            }
            return Double.parseDouble(text);
        }

        private Map<String, Object> object() throws ParseError {
            Map<String, Object> m = new LinkedHashMap<>();
            Token t = peek();
            if (t != null && t.type() == Type.RCURLY) {
                pos++;
                return m;
            }
            while (true) {
                Token key = next();
                if (key == null || key.type() != Type.STRING) {
                    throw new ParseError(key == null || key.type() == Type.RCURLY || key.type() == Type.COMMA
                            ? "expecting value" : "key is not a string in object");
                }
                Token colon = next();
                if (colon == null || colon.type() != Type.COLON) {
                    throw new ParseError("missing : in object pair");
                }
                Object v = value();
                // QEMU's json-parser.c refuses a repeated key once the pair's value is parsed (so an error inside
                // that value is reported first): a last-wins map would let {"execute":"x","execute":"quit"} quit.
                if (m.containsKey(key.text())) {
                    throw new ParseError("duplicate key");
                }
                m.put(key.text(), v);
                Token sep = next();
                if (sep == null) {
                    throw new ParseError("premature EOI");
                }
                if (sep.type() == Type.RCURLY) {
                    return m;
                }
                if (sep.type() != Type.COMMA) {
                    throw new ParseError("expected separator in dict");
                }
            }
        }

        private List<Object> array() throws ParseError {
            List<Object> l = new ArrayList<>();
            Token t = peek();
            if (t != null && t.type() == Type.RSQUARE) {
                pos++;
                return l;
            }
            while (true) {
                l.add(value());
                Token sep = next();
                if (sep == null) {
                    throw new ParseError("premature EOI");
                }
                if (sep.type() == Type.RSQUARE) {
                    return l;
                }
                if (sep.type() != Type.COMMA) {
                    throw new ParseError("expected separator in list");
                }
            }
        }
    }
}
