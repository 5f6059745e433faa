package io.livemon.cli;

import io.livemon.block.BlockException;
import io.livemon.block.BlockGraph;
import io.livemon.block.DeviceModels;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * QEMU's {@code -device} for the storage devices a drive can be attached to: parses each option and attaches it with
 * {@link BlockGraph#attachDevice} (the operation QMP's device_add uses). Anything but a known model
 * ({@link DeviceModels}) is QEMU's "not a valid device model name".
 */
final class GuestDevices {
    private GuestDevices() {
    }

    static List<String> helpLines() {
        return DeviceModels.helpLines();
    }

    /** Attaches every {@code -device}; returns QEMU's error for the first that cannot be, or null. */
    static String attach(BlockGraph graph, List<String> devices) {
        for (String spec : devices) {
            String[] parts = spec.split(",");
            String model = parts[0];
            if (!DeviceModels.known(model)) {
                return "-device " + spec + ": '" + model + "' is not a valid device model name";
            }
            Map<String, String> props = new LinkedHashMap<>();
            for (int i = 1; i < parts.length; i++) {
                int eq = parts[i].indexOf('=');
                props.put(eq < 0 ? parts[i] : parts[i].substring(0, eq), eq < 0 ? "on" : parts[i].substring(eq + 1));
            }
            try {
                graph.attachDevice(model, props.get("id"), props.get("drive"));
            } catch (BlockException e) {
                return "-device " + spec + ": " + e.getMessage();
            }
        }
        return null;
    }
}
