package io.livemon.qmp;

import io.livemon.block.BlockException;
import io.livemon.block.BlockException.ErrorClass;

/** A QMP error reply: QEMU's error class ({@link ErrorClass}, the one definition of the classes) and description. */
public final class QmpException extends Exception {
    private final ErrorClass errorClass;

    private QmpException(ErrorClass errorClass, String desc) {
        super(desc, null, false, false);
        this.errorClass = errorClass;
    }

    public static QmpException generic(String desc) {
        return new QmpException(ErrorClass.GENERIC_ERROR, desc);
    }

    /** Class CommandNotFound: an unknown command, or one the capabilities negotiation does not allow yet. */
    public static QmpException commandNotFound(String desc) {
        return new QmpException(ErrorClass.COMMAND_NOT_FOUND, desc);
    }

    /**
     * The QMP form of a block error: QEMU's class and its message without the hint lines (QEMU's
     * error_append_hint text, such as {@code Is another process using the image [F]?}, is printed by HMP only;
     * QMP's desc carries the message alone).
     */
    public static QmpException of(BlockException e) {
        return new QmpException(e.errorClass(), e.messageWithoutHint());
    }

    public ErrorClass errorClass() {
        return errorClass;
    }

    public String desc() {
        return getMessage();
    }
}
