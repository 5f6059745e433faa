package io.livemon.block;

/**
 * The arguments of block-stream / block_stream.
 *
 * @param jobId       null: the device's id (HMP passes the device argument)
 * @param device      drive id or node name of the node to stream into
 * @param base        file name of the base image (kept), or null
 * @param baseNode    node name of the base, or null
 * @param backingFile backing file string to write (only with a base), or null for base's file name
 * @param speed       bytes per second, 0 = unlimited
 * @param bottom      node name of the last node to copy from (its backing node is kept), or null
 * @param filterNodeName node name of the job's copy-on-read filter, or null for a generated one
 */
public record StreamRequest(String jobId, String device, String base, String baseNode, String backingFile, long speed,
                            OnErrorPolicy onError, boolean autoFinalize, boolean autoDismiss, String bottom,
                            String filterNodeName) {

    /** A request without {@code bottom} or {@code filter-node-name}. */
    public StreamRequest(String jobId, String device, String base, String baseNode, String backingFile, long speed,
                         OnErrorPolicy onError, boolean autoFinalize, boolean autoDismiss) {
        this(jobId, device, base, baseNode, backingFile, speed, onError, autoFinalize, autoDismiss, null, null);
    }

    /** What HMP's {@code block_stream device [speed [base]]} asks for. */
    public static StreamRequest hmp(String device, long speed, String base) {
        return new StreamRequest(device, device, base, null, null, speed, OnErrorPolicy.REPORT, true, true);
    }
}
