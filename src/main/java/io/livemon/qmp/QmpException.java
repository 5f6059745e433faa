package io.livemon.qmp;

import io.livemon.block.BlockException;

/** A QMP error reply: QEMU's error class and description. */
public final class QmpException extends Exception {
    public static final String GENERIC = "GenericError";
    public static final String COMMAND_NOT_FOUND = "CommandNotFound";

    private final String errorClass;

    public QmpException(String errorClass, String desc) {
        super(desc, null, false, false);
        this.errorClass = errorClass;
    }

    public static QmpException generic(String desc) {
        return new QmpException(GENERIC, desc);
    }

    /**
     * The QMP form of a block error: QEMU's class and its message without the hint lines (QEMU's
     * error_append_hint text, such as {@code Is another process using the image [F]?}, is printed by HMP only;
     * QMP's desc carries the message alone).
     */
    public static QmpException of(BlockException e) {
        return new QmpException(e.errorClass().wireName(), e.messageWithoutHint());
    }

    public String errorClass() {
        return errorClass;
    }

    public String desc() {
        return getMessage();
    }
}
