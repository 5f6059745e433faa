package io.livemon.monitor;

import java.util.List;

/**
 * A monitor command line did not match its args_type. {@link #getMessage()} is the line QEMU prints on the
 * monitor (e.g. {@code block_stream: block device name expected}, {@code invalid size}); the caller adds the
 * {@code Try "help CMD" for more information} line itself.
 */
public class ArgumentParseException extends Exception {
    private final List<String> stdoutLines;
    private final List<String> stderrWarnings;
    private final boolean unterminated;

    public ArgumentParseException(String message) {
        this(message, List.of(), List.of(), false);
    }

    public ArgumentParseException(String message, List<String> stdoutLines, List<String> stderrWarnings,
                                  boolean unterminated) {
        super(message);
        this.stdoutLines = List.copyOf(stdoutLines);
        this.stderrWarnings = List.copyOf(stderrWarnings);
        this.unterminated = unterminated;
    }

    /**
     * Lines QEMU prints with printf to its stdout before the monitor message ({@code unterminated string},
     * {@code unsupported escape code: '\t'}). With {@code -monitor stdio} they appear just before the message.
     */
    public List<String> stdoutLines() {
        return stdoutLines;
    }

    /**
     * Warnings QEMU prints to stderr while parsing (before failing), without program prefix, e.g.
     * {@code warning: Using a multiplier suffix on hex numbers is deprecated: 0x10k x y}. Print them as
     * {@code livemon: <line>}.
     */
    public List<String> stderrWarnings() {
        return stderrWarnings;
    }

    /**
     * True when QEMU prints the message without its newline (a lone {@code -} where a flag may stand and no
     * later flag exists: {@code block_job_cancel: unsupported option -} is followed directly by {@code Try ...}
     * on the same line).
     */
    public boolean isUnterminated() {
        return unterminated;
    }
}
