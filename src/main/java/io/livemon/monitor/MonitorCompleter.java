package io.livemon.monitor;

import io.livemon.block.BlockDevice;
import io.livemon.block.BlockNode;
import java.util.List;
import org.jline.reader.Candidate;
import org.jline.reader.Completer;
import org.jline.reader.LineReader;
import org.jline.reader.ParsedLine;

/** Tab completion from the command table: command names, info items, and devices and node names as arguments. */
final class MonitorCompleter implements Completer {
    private final HmpSession session;

    MonitorCompleter(HmpSession session) {
        this.session = session;
    }

    @Override
    public void complete(LineReader reader, ParsedLine line, List<Candidate> candidates) {
        List<String> words = line.words();
        int index = line.wordIndex();
        CommandTable table = session.table();
        if (index == 0) {
            for (HmpCommand c : table.commands()) {
                for (String n : c.names()) {
                    candidates.add(new Candidate(n));
                }
            }
            return;
        }
        if (words.get(0).equals("info") && index == 1) {
            for (HmpCommand c : table.infoCommands()) {
                candidates.add(new Candidate(c.name()));
            }
            return;
        }
        for (BlockDevice d : session.graph().devices()) {
            candidates.add(new Candidate(d.id()));
        }
        for (BlockNode n : session.graph().nodes()) {
            if (!n.autoNamed()) {
                candidates.add(new Candidate(n.name()));
            }
        }
    }
}
