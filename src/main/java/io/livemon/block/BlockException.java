package io.livemon.block;

/**
 * A block operation was refused or failed. The message is QEMU's text; {@link #errorClass()} is the QMP error class
 * a QMP front end reports. How the message is shown (with or without {@code Error: }) is the front end's choice.
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

    public BlockException(String message) {
        this(ErrorClass.GENERIC_ERROR, message);
    }

    public BlockException(ErrorClass errorClass, String message) {
        super(message);
        this.errorClass = errorClass;
    }

    public BlockException(String message, Throwable cause) {
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

    // --- the catalogue of messages that several operations share ---

    static BlockException cannotFind(String device, String nodeName) {
        return new BlockException("Cannot find device='" + device + "' nor node-name='" + nodeName + "'");
    }

    /**
     * livemon's refusal of a {@code backing-file} string that would not lead to the backing image from the overlay's
     * own directory (QEMU 7.2 writes any string; livemon never leaves a chain that cannot be opened).
     */
    static BlockException backingStringDoesNotResolve(String string, String overlay, String backing) {
        return new BlockException("Backing file string '" + string + "' does not lead to '" + backing
                + "' from the directory of '" + overlay + "'");
    }

    static BlockException jobNotFound(String id) {
        return new BlockException(ErrorClass.DEVICE_NOT_ACTIVE, "Block job '" + id + "' not found");
    }

    /** QEMU's op blocker on a backing node (block.c bdrv_set_backing_hd): {@code node} is the backing of {@code parent}. */
    static BlockException usedAsBacking(String node, String parent) {
        return new BlockException("Node '" + node + "' is busy: node is used as backing hd of '" + parent + "'");
    }

    static BlockException busy(String name, Job job) {
        return new BlockException("Node '" + name + "' is busy: block device is in use by block job: "
                + job.type().qapiName());
    }
}
