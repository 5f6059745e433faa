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

    /**
     * Events published by the thread inside {@link #atomically}, held back until its step is done; guarded by
     * {@link #publishLock} (only the thread holding it reads or writes the list).
     */
    private List<Event> deferred;

    public void publish(Event event) {
        LOG.debug("event {} {}", event.name(), event.data());
        synchronized (publishLock) {
            if (deferred != null) {
                deferred.add(event);
                return;
            }
            deliver(event);
        }
    }

    /**
     * Runs {@code step} and delivers the events it published only once it is done, in their order: QEMU emits a job's
     * last events and dismisses it in one main-loop step, so a client that has read the event cannot see the state
     * before the step (the job still listed). Other threads' events wait meanwhile; keep {@code step} short.
     */
    public void atomically(Runnable step) {
        synchronized (publishLock) {
            if (deferred != null) {
                step.run();
                return;
            }
            deferred = new java.util.ArrayList<>();
            try {
                step.run();
            } finally {
                List<Event> held = deferred;
                deferred = null;
                for (Event e : held) {
                    deliver(e);
                }
            }
        }
    }

    private void deliver(Event event) {
        for (Consumer<Event> s : subscribers) {
            try {
                s.accept(event);
            } catch (RuntimeException e) {
                LOG.warn("event subscriber failed", e);
            }
        }
    }
}
