package io.livemon.monitor;

import io.livemon.block.Event;
import java.util.Map;

/** The one-line notice an event becomes at the monitor: {@code [event] NAME key=value ...}. */
public final class EventNotice {
    private EventNotice() {
    }

    public static String format(Event e) {
        StringBuilder sb = new StringBuilder("[event] ").append(e.name());
        for (Map.Entry<String, Object> m : e.data().entrySet()) {
            sb.append(' ').append(m.getKey()).append('=').append(m.getValue());
        }
        return sb.toString();
    }
}
