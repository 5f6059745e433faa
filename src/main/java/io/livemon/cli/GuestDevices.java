package io.livemon.cli;

import io.livemon.block.BlockDevice;
import io.livemon.block.BlockGraph;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * QEMU's {@code -device} for the storage devices a drive can be attached to. livemon emulates no guest, so a device
 * is an attachment: its drive must exist, and each drive takes one device. Device models are QEMU's names and
 * aliases ({@code virtio-blk} is {@code virtio-blk-pci}); anything else is QEMU's "not a valid device model name".
 */
final class GuestDevices {
    /** Model name to its QEMU alias (or null), in {@code -device help}'s order. */
    private static final Map<String, String> MODELS = new LinkedHashMap<>();

    static {
        MODELS.put("scsi-hd", null);
        MODELS.put("virtio-blk-pci", "virtio-blk");
        MODELS.put("virtio-scsi-pci", "virtio-scsi");
    }

    private GuestDevices() {
    }

    static List<String> helpLines() {
        return MODELS.entrySet().stream().map(e -> "name \"" + e.getKey() + "\", bus "
                + (e.getKey().startsWith("scsi") ? "SCSI, desc \"virtual SCSI disk\"" : "PCI, alias \""
                + e.getValue() + "\"")).toList();
    }

    /** Attaches every {@code -device}; returns QEMU's error for the first that cannot be, or null. */
    static String attach(BlockGraph graph, List<String> devices) {
        for (String spec : devices) {
            String[] parts = spec.split(",");
            String model = parts[0];
            boolean known = MODELS.containsKey(model) || MODELS.containsValue(model);
            if (!known) {
                return "-device " + spec + ": '" + model + "' is not a valid device model name";
            }
            Map<String, String> props = new LinkedHashMap<>();
            for (int i = 1; i < parts.length; i++) {
                int eq = parts[i].indexOf('=');
                props.put(eq < 0 ? parts[i] : parts[i].substring(0, eq), eq < 0 ? "on" : parts[i].substring(eq + 1));
            }
            String drive = props.get("drive");
            if (drive == null) {
                continue; // a controller (virtio-scsi) or a device without a medium
            }
            BlockDevice d = graph.device(drive);
            if (d == null) {
                return "-device " + spec + ": Property '" + model + ".drive' can't find value '" + drive + "'";
            }
        }
        return null;
    }
}
