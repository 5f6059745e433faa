package io.livemon.block;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Delivers events to every subscriber (the HMP notice printer, each QMP client), synchronously and in the order
 * they were published. Subscribers must not block: a slow one queues on its own side.
 */
public final class EventBus {
    private static final Logger LOG = LoggerFactory.getLogger(EventBus.class);

    /** Current subscribers; copy-on-write so publishing never holds a lock while calling out. */
    private final List<Consumer<Event>> subscribers = new CopyOnWriteArrayList<>();

    /** Serialises publication so that all subscribers see events in one global order. */
    private final Object publishLock = new Object();

    public AutoCloseable subscribe(Consumer<Event> subscriber) {
        subscribers.add(subscriber);
        return () -> subscribers.remove(subscriber);
    }

    public void publish(Event event) {
        LOG.debug("event {} {}", event.name(), event.data());
        synchronized (publishLock) {
            for (Consumer<Event> s : subscribers) {
                try {
                    s.accept(event);
                } catch (RuntimeException e) {
                    LOG.warn("event subscriber failed", e);
                }
            }
        }
    }
}
