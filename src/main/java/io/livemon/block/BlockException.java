package io.livemon.block;

/**
 * A block operation was refused or failed. The message is QEMU's text; {@link #errorClass()} is the QMP error class
 * a QMP front end reports. How the message is shown (with or without {@code Error: }) is the front end's choice.
 * Every one is made by a factory of {@link BlockErrors}, the catalogue of livemon's errors.
 */
public class BlockException extends Exception {

    /** QMP error classes, as QEMU names them on the wire. */
    public enum ErrorClass {
        GENERIC_ERROR("GenericError"),
        COMMAND_NOT_FOUND("CommandNotFound"),
        DEVICE_NOT_ACTIVE("DeviceNotActive"),
        DEVICE_NOT_FOUND("DeviceNotFound");

        private final String wireName;

        ErrorClass(String wireName) {
            this.wireName = wireName;
        }

        public String wireName() {
            return wireName;
        }
    }

    private final ErrorClass errorClass;

    BlockException(String message) {
        this(ErrorClass.GENERIC_ERROR, message);
    }

    BlockException(ErrorClass errorClass, String message) {
        super(message);
        this.errorClass = errorClass;
    }

    BlockException(String message, Throwable cause) {
        super(message, cause);
        this.errorClass = ErrorClass.GENERIC_ERROR;
    }

    public ErrorClass errorClass() {
        return errorClass;
    }

    /**
     * The message without QEMU's hint: a hint (QEMU's error_append_hint, e.g. {@code Is another process using the
     * image [F]?}) follows the message after a newline in {@link #getMessage()}, which is what HMP prints; QMP's
     * {@code desc} is the first line alone.
     */
    public String messageWithoutHint() {
        String m = getMessage();
        int nl = m == null ? -1 : m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }
}
