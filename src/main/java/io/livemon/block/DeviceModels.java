package io.livemon.block;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The guest storage device models a drive can be attached to ({@code -device}, {@code device_add}), by QEMU's names
 * and aliases ({@code virtio-blk} is {@code virtio-blk-pci}). livemon emulates no guest: a device is an attachment
 * that gives its drive a qdev id. Every model here is a disk with fixed media or a controller without a drive.
 */
public final class DeviceModels {
    /** Model name to its QEMU alias (or null), in {@code -device help}'s order. */
    private static final Map<String, String> MODELS = new LinkedHashMap<>();

    static {
        MODELS.put("scsi-hd", null);
        MODELS.put("virtio-blk-pci", "virtio-blk");
        MODELS.put("virtio-scsi-pci", "virtio-scsi");
    }

    private DeviceModels() {
    }

    /** Whether {@code model} is a name or alias livemon attaches. */
    public static boolean known(String model) {
        return MODELS.containsKey(model) || MODELS.containsValue(model);
    }

    /** {@code -device help}'s lines for these models, as QEMU prints them. */
    public static List<String> helpLines() {
        return MODELS.entrySet().stream().map(e -> "name \"" + e.getKey() + "\", bus "
                + (e.getKey().startsWith("scsi") ? "SCSI, desc \"virtual SCSI disk\"" : "PCI, alias \""
                + e.getValue() + "\"")).toList();
    }
}
