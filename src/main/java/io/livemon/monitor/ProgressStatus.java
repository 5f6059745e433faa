package io.livemon.monitor;

import java.util.List;
import org.jline.terminal.Size;
import org.jline.terminal.Terminal;
import org.jline.utils.AttributedString;
import org.jline.utils.InfoCmp.Capability;
import org.jline.utils.Status;

/**
 * The job progress lines at the bottom of the terminal: JLine's {@link Status} (a scroll region above lines drawn
 * below it), with two of its moves made safe for a prompt that may be anywhere on the screen.
 *
 * <p>Growing: JLine saves the cursor, moves it down, sets the smaller scroll region, restores the saved position and
 * moves up as many lines; that is right only when the moves down scrolled the screen, so on an almost empty screen
 * the prompt lost its place and the top line went off. Here the cursor goes down by index (ESC D, which scrolls only
 * at the bottom of the region and keeps the column) and back up by as many lines: the screen scrolls exactly as
 * much as the new lines need, and the cursor stays on its text. Only then is the region set, the cursor saved and
 * restored around it (setting a region homes the cursor).
 *
 * <p>Resizing: this status is not the terminal's registered one, so JLine's line reader keeps its display on a
 * resize instead of repainting it as new content over a cleared screen; {@link #relayout} (called by the monitor
 * when it sees a new size) draws the lines again at the new bottom.
 *
 * <p>Not thread-safe: the monitor's progress thread alone draws it (and the REPL thread once, at the end).
 */
final class ProgressStatus extends Status {
    /** VT100 index: down one line, scrolling the region when at its bottom margin; the column is kept. */
    private static final String INDEX = "\u001bD";

    /** The terminal size the lines were last laid out for (JLine's display keeps its rows to itself). */
    private Size size;

    ProgressStatus(Terminal terminal) {
        super(terminal);
        this.size = terminal.getSize();
    }

    /** Whether the terminal can show it (a scroll region, cursor addressing, save and restore). */
    boolean isSupported() {
        return supported;
    }

    /** Redraws at the terminal's new size, if it changed since the last draw. */
    void relayout() {
        Size now = terminal.getSize();
        if (!supported || now.equals(size) || now.getRows() <= 0) {
            return;
        }
        size = now;
        resize(now);
        display.reset();
        // the terminal reset the scroll region when it resized: grow again from a full-screen region
        scrollRegion = now.getRows() - 1;
        update(lines);
    }

    @Override
    public void update(List<AttributedString> newLines, boolean flush) {
        if (supported && !suspended) {
            int newScrollRegion = size.getRows() - 1 - newLines.size();
            if (newScrollRegion < scrollRegion && newScrollRegion >= 0) {
                int grow = scrollRegion - newScrollRegion;
                for (int i = 0; i < grow; i++) {
                    terminal.writer().write(INDEX);
                }
                for (int i = 0; i < grow; i++) {
                    terminal.puts(Capability.cursor_up);
                }
                terminal.puts(Capability.save_cursor);
                terminal.puts(Capability.change_scroll_region, 0, newScrollRegion);
                terminal.puts(Capability.restore_cursor);
                scrollRegion = newScrollRegion; // JLine's update then finds the region as it wants it
            }
        }
        super.update(newLines, flush);
    }

    /** Removes the lines and gives the whole screen back to the scroll region. */
    @Override
    public void close() {
        if (supported) {
            update(List.of());
            super.close();
        }
    }
}
