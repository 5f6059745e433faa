package io.livemon.block;

import io.livemon.block.BlockException.ErrorClass;
import io.livemon.image.Errno;
import io.livemon.image.ImageException;
import java.io.IOException;

/**
 * Every error livemon's block layer and its front ends raise as a {@link BlockException}: one factory per message,
 * each with QEMU 7.2's text (the spec; tests and conformance transcripts compare it byte for byte) and QMP error
 * class. Each factory names where QEMU raises the error; "livemon:" marks a refusal of livemon's own. Factories are
 * public only where monitor, qmp or cli raise the error too.
 */
public final class BlockErrors {
    private BlockErrors() {
    }

    private static BlockException generic(String message) {
        return new BlockException(message);
    }

    private static BlockException withCause(String message, Throwable cause) {
        return cause == null ? new BlockException(message) : new BlockException(message, cause);
    }

    // ---------------------------------------------------------------- QAPI's parameter checks (qapi/*.c, qerror.h)

    /** QERR_MISSING_PARAMETER: qapi/qobject-input-visitor.c qobject_input_get_object. */
    public static BlockException missingParameter(String name) {
        return generic("Parameter '" + name + "' is missing");
    }

    /** qapi/qobject-input-visitor.c qobject_input_check_struct. */
    public static BlockException unexpectedParameter(String name) {
        return generic("Parameter '" + name + "' is unexpected");
    }

    /** QERR_INVALID_PARAMETER_TYPE: qapi/qobject-input-visitor.c (the type checks). */
    public static BlockException invalidParameterType(String name, String expected) {
        return generic("Invalid parameter type for '" + name + "', expected: " + expected);
    }

    /** qapi/qapi-visit-core.c input_type_enum. */
    public static BlockException valueNotAccepted(String name, String value) {
        return generic("Parameter '" + name + "' does not accept value '" + value + "'");
    }

    /** QERR_INVALID_PARAMETER_VALUE ({@code Parameter 'NAME' expects WHAT}): qapi visitors and commands. */
    public static BlockException parameterExpects(String name, String what) {
        return generic("Parameter '" + name + "' expects " + what);
    }

    /** QERR_INVALID_PARAMETER: util/qemu-option.c opt_validate. */
    static BlockException invalidParameter(String name) {
        return generic("Invalid parameter '" + name + "'");
    }

    /** qapi/qapi-util.c qapi_enum_parse. */
    static BlockException invalidParameterValue(String value) {
        return generic("invalid parameter value: " + value);
    }

    /** util/keyval.c keyval_parse_one. */
    static BlockException expectedEquals(String parameter) {
        return generic("Expected '=' after parameter '" + parameter + "'");
    }

    /** blockjob.c block_job_set_speed_locked. */
    static BlockException negativeSpeed() {
        return nonNegativeExpected("speed");
    }

    /** QERR_INVALID_PARAMETER_VALUE with {@code a non-negative value} (blockjob.c; a null-co size for livemon). */
    static BlockException nonNegativeExpected(String name) {
        return parameterExpects(name, "a non-negative value");
    }

    /** block/monitor/block-hmp-cmds.c hmp_snapshot_blkdev (and livemon's check of blockdev-snapshot-sync's file). */
    public static BlockException snapshotFileMissing() {
        return missingParameter("snapshot-file");
    }

    /** blockdev.c qmp_block_stream: {@code 'A' and 'B' cannot be specified at the same time}. */
    public static BlockException cannotSpecifyBoth(String a, String b) {
        return generic("'" + a + "' and '" + b + "' cannot be specified at the same time");
    }

    /** blockdev.c qmp_block_commit: {@code 'A' and 'B' are mutually exclusive}. */
    static BlockException mutuallyExclusive(String a, String b) {
        return generic("'" + a + "' and '" + b + "' are mutually exclusive");
    }

    /** livemon: a {@code -blockdev} JSON argument that does not parse; the JSON parser's own text. */
    public static BlockException invalidJson(String parserMessage) {
        return generic(parserMessage);
    }

    // ---------------------------------------------------------------- finding devices, nodes and jobs

    /** block.c bdrv_lookup_bs: an absent name prints as empty, as QEMU prints it. */
    public static BlockException cannotFind(String device, String nodeName) {
        return generic("Cannot find device='" + (device == null ? "" : device) + "' nor node-name='"
                + (nodeName == null ? "" : nodeName) + "'");
    }

    /**
     * block/qapi-sysemu.c qmp_get_blk, blockdev.c qmp_block_commit, softmmu/qdev-monitor.c
     * find_device_state (class DeviceNotFound); HMP's commit and drive_del print the same text.
     */
    public static BlockException deviceNotFound(String id) {
        return new BlockException(ErrorClass.DEVICE_NOT_FOUND, "Device '" + id + "' not found");
    }

    /** block.c bdrv_lookup_bs: a drive of that name without a medium. */
    public static BlockException noMedium(String device) {
        return generic("Device '" + device + "' has no medium");
    }

    /** blockdev.c qmp_blockdev_del. */
    static BlockException nodeNotFound(String nodeName) {
        return generic("Failed to find node with node-name='" + nodeName + "'");
    }

    /** blockdev.c find_block_job_locked (class DeviceNotActive). */
    static BlockException jobNotFound(String id) {
        return new BlockException(ErrorClass.DEVICE_NOT_ACTIVE, "Block job '" + id + "' not found");
    }

    /** job-qmp.c find_job_locked. */
    static BlockException noSuchJob() {
        return generic("Job not found");
    }

    /** blockdev.c qmp_block_commit. */
    static BlockException topNotFound(String top) {
        return generic("Top image file " + top + " not found");
    }

    /** blockdev.c qmp_block_stream, qmp_block_commit. */
    static BlockException notInBackingChain(String base) {
        return generic("Can't find '" + base + "' in the backing chain");
    }

    /** blockdev.c qmp_block_commit. */
    static BlockException notInThisChain(String nodeName) {
        return generic("'" + nodeName + "' is not in this backing file chain");
    }

    /** blockdev.c qmp_block_stream. */
    static BlockException notBackingImageOf(String base, String target) {
        return generic("Node '" + base + "' is not a backing image of '" + target + "'");
    }

    /** The text of older QEMU's block/commit.c commit_start (7.2 asserts that the overlay exists). */
    static BlockException overlayNotFound(String topFilename) {
        return generic("Could not find overlay image for " + topFilename + ":");
    }

    /** blockdev.c do_backup_common. */
    static BlockException bitmapNotFound(String name) {
        return generic("Bitmap '" + name + "' could not be found");
    }

    // ---------------------------------------------------------------- names and ids

    /** block.c bdrv_assign_node_name. */
    static BlockException duplicateNodeName(String nodeName) {
        return generic("Duplicate nodes with node-name='" + nodeName + "'");
    }

    /** block.c bdrv_assign_node_name. */
    static BlockException invalidNodeName(String nodeName) {
        return generic("Invalid node-name: '" + nodeName + "'");
    }

    /** blockdev.c qmp_blockdev_add. */
    static BlockException rootNodeNameRequired() {
        return generic("'node-name' must be specified for the root node");
    }

    /** block/monitor/block-hmp-cmds.c hmp_drive_add_node. */
    public static BlockException nodeNameNeeded() {
        return generic("'node-name' needs to be specified");
    }

    /** external_snapshot_prepare in blockdev.c. */
    static BlockException overlayNodeNameInUse() {
        return generic("New overlay node-name already in use");
    }

    /** util/qemu-option.c qemu_opts_create, for the drive list. */
    static BlockException duplicateDriveId(String id) {
        return generic("Duplicate ID '" + id + "' for drive");
    }

    /** softmmu/qdev-monitor.c qdev_set_id. */
    static BlockException duplicateDeviceId(String id) {
        return generic("Duplicate device ID '" + id + "'");
    }

    /** job.c job_create. */
    static BlockException invalidJobId(String id) {
        return generic("Invalid job ID '" + id + "'");
    }

    /** job.c job_create. */
    static BlockException jobIdInUse(String id) {
        return generic("Job ID '" + id + "' already in use");
    }

    // ---------------------------------------------------------------- busy, in use, read-only

    /** block.c bdrv_op_is_blocked, with the blocker blockjob.c block_job_create sets. */
    static BlockException busy(String name, Job job) {
        return generic("Node '" + name + "' is busy: block device is in use by block job: " + job.type().qapiName());
    }

    /** block.c bdrv_op_is_blocked, with the blocker bdrv_backing_attach sets: {@code node} backs {@code parent}. */
    static BlockException usedAsBacking(String node, String parent) {
        return generic("Node '" + node + "' is busy: node is used as backing hd of '" + parent + "'");
    }

    /** blockdev.c qmp_blockdev_del (also HMP drive_del of a node). */
    static BlockException nodeInUse(String nodeName) {
        return generic("Node " + nodeName + " is in use");
    }

    /** blockdev.c qmp_blockdev_del. */
    static BlockException notMonitorOwned(String nodeName) {
        return generic("Node " + nodeName + " is not owned by the monitor");
    }

    /** blockdev.c qmp_blockdev_del. */
    static BlockException blockDeviceInUse(String nodeName) {
        return generic("Block device " + nodeName + " is in use");
    }

    /**
     * QERR_DEVICE_IN_USE: blockdev.c qmp_block_resize. An absent device prints as {@code (null)}, glibc's text for a
     * null string, which is what QEMU 7.2 shows for a resize named by node.
     */
    static BlockException deviceInUse(String device) {
        return generic("Device '" + (device == null ? "(null)" : device) + "' is in use");
    }

    /** hw/core/qdev-properties-system.c set_drive_helper. */
    static BlockException driveInUseByDevice(String drive) {
        return generic("Drive '" + drive + "' is already in use by another device");
    }

    /** block/qapi-sysemu.c do_open_tray, blockdev_remove_medium. */
    static BlockException notRemovable(String id) {
        return generic("Device '" + id + "' is not removable");
    }

    /** block.c bdrv_node_refresh_perm: a writer on a node opened read-only. */
    static BlockException readOnlyNode() {
        return generic("Block node is read-only");
    }

    /** blockdev.c qmp_get_root_bs. */
    static BlockException needRootNode() {
        return generic("Need a root block node");
    }

    /** block.c bdrv_attach_child_noperm. */
    static BlockException backingCycle(String child, String parent) {
        return generic("Making '" + child + "' a backing child of '" + parent + "' would create a cycle");
    }

    // ---------------------------------------------------------------- job verbs (job.c, blockdev.c)

    /** job.c job_apply_verb_locked. */
    static BlockException verbNotAllowed(String id, JobStatus status, JobVerb verb) {
        return generic("Job '" + id + "' in state '" + status.qapiName() + "' cannot accept command verb '"
                + verb.qapiName() + "'");
    }

    /** job.c job_user_pause_locked. */
    static BlockException alreadyPaused() {
        return generic("Job is already paused");
    }

    /** job.c job_user_resume_locked. */
    static BlockException notPaused() {
        return generic("Can't resume a job that was not paused");
    }

    /** blockdev.c qmp_block_job_cancel. */
    static BlockException jobPaused(String id) {
        return generic("The block job for device '" + id + "' is currently paused");
    }

    // ---------------------------------------------------------------- stream, commit, mirror, backup

    /** blockdev.c qmp_block_stream. */
    /** blockdev.c qmp_block_stream: {@code bottom} names a filter node. */
    static BlockException bottomIsFilter(String bottom) {
        return generic("Node '" + bottom + "' is a filter, use a non-filter node as 'bottom'");
    }

    /** blockdev.c qmp_block_stream: {@code bottom} is not in the chain below {@code device}. */
    static BlockException bottomNotInChain(String bottom, String device) {
        return generic("Node '" + bottom + "' is not in a chain starting from '" + device + "'");
    }

    /**
     * block.c bdrv_freeze_backing_chain: the chain a new job would hold crosses the link to a filter that may never
     * be frozen (an intermediate commit's commit_top, named by its node name).
     */
    static BlockException cannotFreezeLink(String filterNodeName) {
        return generic("Cannot freeze 'backing' link to '" + filterNodeName + "'");
    }

    static BlockException backingFileForWholeChain() {
        return generic("backing file specified, but streaming the entire chain");
    }

    /** blockdev.c qmp_block_commit. */
    static BlockException commitIntoItself() {
        return generic("cannot commit an image into itself");
    }

    /** blockdev.c qmp_block_commit. */
    static BlockException backingFileForActiveLayer() {
        return generic("'backing-file' specified, but 'top' is the active layer");
    }

    /** block/mirror.c mirror_start_job. */
    static BlockException mirrorIntoItself() {
        return generic("Can't mirror node into itself");
    }

    /** block/mirror.c mirror_start. */
    static BlockException syncModeNotSupported(String mode) {
        return generic("Sync mode '" + mode + "' not supported");
    }

    /** blockdev.c blockdev_mirror_common. */
    static BlockException granularityOutOfRange() {
        return parameterExpects("granularity", "a value in range [512B, 64MB]");
    }

    /** blockdev.c blockdev_mirror_common. */
    static BlockException granularityNotPowerOf2() {
        return parameterExpects("granularity", "a power of 2");
    }

    /** block/mirror.c mirror_start_job. */
    static BlockException invalidBufSize() {
        return invalidParameter("buf-size");
    }

    /** livemon: QEMU starts the job and fails on the permission conflict of two writers. */
    static BlockException mirrorToAttachedDevice() {
        return generic("Cannot mirror to an attached block device");
    }

    /** livemon: a mirror target that another node uses. */
    static BlockException mirrorToUsedNode() {
        return generic("Cannot mirror to a node that another node uses");
    }

    /** block/mirror.c mirror_run, block/backup.c backup_job_create. */
    static BlockException differentSizes() {
        return generic("Source and target image have different sizes");
    }

    /** block/backup.c backup_job_create. */
    static BlockException sameSourceAndTarget() {
        return generic("Source and target cannot be the same");
    }

    /** block/backup.c backup_job_create (QEMU names the drive after the text; livemon leaves it empty). */
    static BlockException compressionNotSupported() {
        return generic("Compression is not supported for this drive ");
    }

    /** blockdev.c do_backup_common. */
    static BlockException bitmapNameRequired(String syncMode) {
        return generic("must provide a valid bitmap name for '" + syncMode + "' sync mode");
    }

    /** blockdev.c do_backup_common. */
    static BlockException bitmapModeWithoutBitmap() {
        return generic("Cannot specify bitmap sync mode without a bitmap");
    }

    // ---------------------------------------------------------------- images: formats, creation, backing files

    /** block.c bdrv_fill_options. */
    static BlockException unknownDriver(String format) {
        return generic("Unknown driver '" + format + "'");
    }

    /** block.c bdrv_img_create. */
    static BlockException unknownFormat(String format) {
        return generic("Unknown file format '" + format + "'");
    }

    /** block.c bdrv_img_create. */
    static BlockException rawHasNoBacking() {
        return generic("Backing file not supported for file format 'raw'");
    }

    /** block.c bdrv_img_create: the error, then its hint {@code Could not open backing image.} */
    static BlockException backingImageMissing(String path) {
        return generic("Could not open '" + path + "': No such file or directory\nCould not open backing image.");
    }

    /** external_snapshot_prepare in blockdev.c. */
    static BlockException overlayWithoutBacking() {
        return generic("The overlay does not support backing images");
    }

    /** block.c bdrv_open_child_bs. */
    static BlockException blockDeviceRequired(String child) {
        return generic("A block device must be specified for \"" + child + "\"");
    }

    /** block.c bdrv_open_backing_file, a backing reference to no format node (block.c bdrv_lookup_bs's text). */
    static BlockException backingNotFound(String reference) {
        return couldNotOpenBacking(cannotFind(reference, reference).getMessage(), null);
    }

    /** block.c bdrv_open_backing_file: the failure's message after the prefix ({@code null} when it has none). */
    static BlockException backingOpenFailed(IOException e) {
        return couldNotOpenBacking(e.getMessage(), e);
    }

    private static BlockException couldNotOpenBacking(String reason, Throwable cause) {
        return withCause("Could not open backing file: " + reason, cause);
    }

    /**
     * livemon's refusal of a {@code backing-file} string that would not lead to the backing image from the overlay's
     * own directory (QEMU 7.2 writes any string; livemon never leaves a chain that cannot be opened).
     */
    static BlockException backingStringDoesNotResolve(String string, String overlay, String backing) {
        return generic("Backing file string '" + string + "' does not lead to '" + backing
                + "' from the directory of '" + overlay + "'");
    }

    // ---------------------------------------------------------------- -drive and blockdev-add options

    /** block.c bdrv_open_inherit: an option no layer took. */
    static BlockException unsupportedOption(String format, String option) {
        return generic("Block format '" + format + "' does not support the option '" + option + "'");
    }

    /** block.c bdrv_parse_discard_flags' caller (bdrv_open_common). */
    static BlockException invalidDiscard() {
        return generic("Invalid discard option");
    }

    /** blockdev.c drive_new. */
    static BlockException invalidCache() {
        return generic("invalid cache option");
    }

    /** block.c bdrv_parse_detect_zeroes. */
    static BlockException detectZeroesUnmapWithoutDiscard() {
        return generic("setting detect-zeroes to unmap is not allowed without setting discard operation to unmap");
    }

    /** livemon: a block driver of QEMU's that livemon does not implement. */
    static BlockException driverNotSupported(String driver) {
        return generic("livemon does not support the block driver '" + driver + "'");
    }

    /** livemon: a child given by node reference where livemon takes it inline only. */
    static BlockException nodeReferenceNotSupported(String reference, String key) {
        return generic("livemon does not support a node reference ('" + reference + "') for '" + key
                + "': give the child inline");
    }

    /** livemon: a blkdebug node over anything but a file node. */
    static BlockException blkdebugNeedsFile() {
        return generic("livemon supports only a 'file' image under blkdebug");
    }

    /** livemon: a format node over a protocol node other than file or blkdebug. */
    static BlockException unsupportedProtocol(String driver) {
        return generic("livemon supports a '" + driver + "' node only over a 'file' or 'blkdebug' node");
    }

    /** livemon: an inline backing node needs a name. */
    static BlockException inlineBackingNeedsNodeName() {
        return generic("livemon needs a 'node-name' for an inline backing node");
    }

    /** livemon: a node reference to a node that is not a free file or blkdebug node. */
    static BlockException notAdoptable(String nodeName, String driver) {
        return generic("livemon opens a node by reference only over a 'file' or 'blkdebug' node, not over '"
                + nodeName + "' (" + driver + ")");
    }

    /** livemon: a protocol node that a format node already uses. */
    static BlockException secondNodeOver(String nodeName) {
        return generic("livemon does not open a second node over '" + nodeName + "'");
    }

    // ---------------------------------------------------------------- resize, media, guest devices

    /** QERR_INVALID_PARAMETER_VALUE in blockdev.c qmp_block_resize. */
    static BlockException negativeSize() {
        return parameterExpects("size", "a >0 size");
    }

    /** block/io.c bdrv_check_qiov_request (bdrv_co_truncate's bdrv_check_request). */
    static BlockException offsetTooLarge(long offset, long max) {
        return generic("offset(" + offset + ") exceeds maximum(" + max + ")");
    }

    /** softmmu/qdev-monitor.c qdev_get_device_class. */
    static BlockException invalidDeviceModel(String model) {
        return generic("'" + model + "' is not a valid device model name");
    }

    /** hw/core/qdev-properties-system.c set_drive_helper. */
    static BlockException driveValueNotFound(String model, String drive) {
        return generic("Property '" + model + ".drive' can't find value '" + drive + "'");
    }

    /** block/monitor/block-hmp-cmds.c hmp_drive_add (QEMU prints the interface type's number). */
    public static BlockException cannotHotAdd(int interfaceCode) {
        return generic("Can't hot-add drive to type " + interfaceCode);
    }

    // ---------------------------------------------------------------- HMP commit (block-hmp-cmds.c hmp_commit)

    /** hmp_commit: {@code 'commit' error for 'DEVICE': STRERROR}, with EBUSY's text. */
    static BlockException commitBusy(String device) {
        return commitError(device, "Device or resource busy", null);
    }

    /** hmp_commit: bdrv_commit's ENOTSUP, a drive without a backing file. */
    static BlockException commitNotSupported(String device) {
        return commitError(device, Errno.ENOTSUP.strerror, null);
    }

    /** hmp_commit: bdrv_commit's EPERM, a read-only top. */
    static BlockException commitNotPermitted(String device) {
        return commitError(device, Errno.EPERM.strerror, null);
    }

    /** hmp_commit with the failure's own message ({@code null} when it has none). */
    static BlockException commitFailed(String device, IOException e) {
        return commitError(device, e.getMessage(), e);
    }

    private static BlockException commitError(String device, String reason, Throwable cause) {
        return withCause("'commit' error for '" + device + "': " + reason, cause);
    }

    // ---------------------------------------------------------------- livemon's own monitor commands

    /** livemon's wait_jobs command. */
    public static BlockException jobsTimedOut(long seconds) {
        return generic("Timed out after " + seconds + " s waiting for block jobs");
    }

    /** livemon's wait_jobs command. */
    public static BlockException jobsWaitInterrupted() {
        return generic("Interrupted while waiting for block jobs");
    }

    // ---------------------------------------------------------------- I/O failures

    /**
     * An I/O failure as it is: its message is the error ({@code null} stays {@code null}). Opening images: the image
     * layer's messages are QEMU's text already.
     */
    static BlockException io(IOException e) {
        return new BlockException(e.getMessage(), e);
    }

    /**
     * An I/O failure of an operation on open images: the image layer's message as it is; any other failure without a
     * message is EIO's text, as QEMU turns an error without errno into -EIO.
     */
    static BlockException ioOrEio(IOException e) {
        if (e instanceof ImageException) {
            return new BlockException(e.getMessage(), e);
        }
        String m = e.getMessage();
        return new BlockException(m == null ? Errno.EIO.strerror : m, e);
    }

    /**
     * A failure an image signals unchecked (an overlay refusing its backing image): its message, else the
     * exception's own description ({@link Throwable#toString}).
     */
    static BlockException unchecked(RuntimeException e) {
        return new BlockException(e.getMessage() == null ? e.toString() : e.getMessage(), e);
    }
}
