package io.livemon.block;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One QMP-style event: its name, its data members in QEMU's order, and the wall-clock time it happened.
 *
 * @param timestampMicros microseconds since the epoch
 */
public record Event(String name, Map<String, Object> data, long timestampMicros) {

    public Event {
        data = Collections.unmodifiableMap(new LinkedHashMap<>(data));
    }

    static Event now(String name, Map<String, Object> data) {
        java.time.Instant t = java.time.Instant.now();
        return new Event(name, data, t.getEpochSecond() * 1_000_000L + t.getNano() / 1000);
    }

    public long seconds() {
        return timestampMicros / 1_000_000L;
    }

    public long microseconds() {
        return timestampMicros % 1_000_000L;
    }
}
