package io.livemon.monitor;

import io.livemon.block.BlockDevice;
import io.livemon.block.BlockNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.jline.builtins.Completers;
import org.jline.reader.Candidate;
import org.jline.reader.Completer;
import org.jline.reader.LineReader;
import org.jline.reader.ParsedLine;

/**
 * Tab completion from the command table: command names, {@code info} items, and for each argument what its
 * args_type expects — devices and node names for a block device (QEMU offers devices only), file names for files,
 * format names, and (once the word starts with '-') the flags that may stand at that position. A position that names an image to create (a snapshot
 * file, a job's target) leaves out the images that are open: choosing one would only earn a lock error.
 */
final class MonitorCompleter implements Completer {
    /** Arguments of type {@code s} that name a file. */
    private static final Set<String> FILE_ARGS = Set.of("snapshot-file", "target", "base");
    /** File arguments that name an image to create or overwrite: an image livemon has open is never offered there. */
    private static final Set<String> TARGET_ARGS = Set.of("snapshot-file", "target");
    private static final List<String> FORMATS = List.of("qcow2", "raw");

    private final HmpSession session;
    private final Completer files;

    MonitorCompleter(HmpSession session) {
        this.session = session;
        this.files = new Completers.FileNameCompleter() {
            @Override
            protected Path getUserDir() {
                return session.graph().cwd();
            }
        };
    }

    @Override
    public void complete(LineReader reader, ParsedLine line, List<Candidate> candidates) {
        List<String> words = line.words();
        int index = line.wordIndex();
        CommandTable table = session.table();
        if (index == 0) {
            for (HmpCommand c : table.commands()) {
                for (String n : c.names()) {
                    candidates.add(new Candidate(n, n, c.extension() ? "livemon" : null, null, null, null, true));
                }
            }
            return;
        }
        HmpCommand cmd = table.find(words.get(0));
        int first = 1;
        if (cmd == null) {
            return;
        }
        if (cmd.name().equals("help")) {
            if (index == 1) {
                table.commands().forEach(c -> candidates.add(new Candidate(c.name())));
            }
            return;
        }
        if (cmd.name().equals("info")) {
            if (index == 1) {
                table.infoCommands().forEach(c -> candidates.add(new Candidate(c.name())));
                return;
            }
            cmd = table.findInfo(words.get(1));
            first = 2;
            if (cmd == null) {
                return;
            }
        }
        ArgSpec spec = table.spec(cmd);
        List<ArgSpec.Param> params = spec.params();
        int p = 0;
        for (int w = first; w < index && p < params.size(); w++) {
            String word = words.get(w);
            // Skip flags that do not match this word; a matching flag consumes it.
            while (p < params.size() && params.get(p).type() == '-' && !word.equals("-" + params.get(p).flag())) {
                p++;
            }
            p++;
        }
        // flags are offered once the word starts with '-': a lone flag would otherwise be inserted where the user
        // asked for the argument (block_job_cancel <Tab> with no job running became "block_job_cancel -f")
        boolean flagWord = line.word().startsWith("-");
        for (int q = p; q < params.size(); q++) {
            ArgSpec.Param param = params.get(q);
            if (param.type() == '-') {
                if (flagWord) {
                    candidates.add(new Candidate("-" + param.flag(), "-" + param.flag(), null, param.name(), null,
                            null, true));
                }
                continue;
            }
            if (!offerForCommand(cmd, words, param, candidates)) {
                offer(reader, line, candidates, param);
            }
            break;
        }
    }

    /**
     * Candidates that depend on the command: a {@code block_job_*} command offers only devices that have a job, and
     * block_stream's base (also in the seed's two-argument form, where the base stands at the speed's place) offers
     * only the backing files of the named device's chain, as their overlays name them (the names QEMU looks up).
     *
     * @return whether the command decided the candidates
     */
    private boolean offerForCommand(HmpCommand cmd, List<String> words, ArgSpec.Param param,
                                    List<Candidate> candidates) {
        if (cmd.name().startsWith("block_job_") && param.type() == 'B') {
            session.graph().jobInfos().forEach(j -> candidates.add(new Candidate(j.id())));
            return true;
        }
        if (cmd.name().equals("block_stream") && (param.name().equals("base") || param.name().equals("speed"))) {
            BlockDevice d = words.size() > 1 ? session.graph().device(words.get(1)) : null;
            if (d == null || d.root() == null) {
                return true;
            }
            for (BlockNode n = d.root().skipFilters(); n != null && n.backing() != null; n = n.backing()) {
                String b = n.image().backingFileString();
                if (b != null && !b.isEmpty()) {
                    candidates.add(new Candidate(b));
                }
            }
            return true;
        }
        return false;
    }

    /** The identities (device and inode) of every image file open in the graph. */
    private Set<Object> openFiles() {
        Set<Object> keys = new HashSet<>();
        for (BlockNode n : session.graph().nodes()) {
            Path p = n.image() == null ? null : n.image().path();
            Object k = p == null ? null : fileKey(session.graph().cwd().resolve(p));
            if (k != null) {
                keys.add(k);
            }
        }
        return keys;
    }

    /** A file's identity, so that any name for an open image (./x, a link) is recognised; null if unreadable. */
    private static Object fileKey(Path p) {
        try {
            return Files.readAttributes(p, BasicFileAttributes.class).fileKey();
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    private void offer(LineReader reader, ParsedLine line, List<Candidate> candidates, ArgSpec.Param param) {
        switch (param.type()) {
            case 'B' -> {
                for (BlockDevice d : session.graph().devices()) {
                    candidates.add(new Candidate(d.id(), d.id(), "devices", null, null, null, true));
                }
                for (BlockNode n : session.graph().nodes()) {
                    if (!n.autoNamed()) {
                        candidates.add(new Candidate(n.name(), n.name(), "nodes", null, null, null, true));
                    }
                }
            }
            case 'F' -> files.complete(reader, line, candidates);
            case 's' -> {
                if (TARGET_ARGS.contains(param.name())) {
                    List<Candidate> all = new ArrayList<>();
                    files.complete(reader, line, all);
                    Set<Object> open = openFiles();
                    all.stream().filter(c -> !open.contains(fileKey(session.graph().cwd().resolve(c.value()))))
                            .forEach(candidates::add);
                } else if (FILE_ARGS.contains(param.name())) {
                    files.complete(reader, line, candidates);
                } else if (param.name().equals("format") || param.name().equals("arg")) {
                    FORMATS.forEach(f -> candidates.add(new Candidate(f)));
                } else if (param.name().equals("read-only-mode")) {
                    List.of("retain", "read-only", "read-write").forEach(m -> candidates.add(new Candidate(m)));
                }
            }
            default -> {
                // sizes and numbers: nothing to offer
            }
        }
    }
}
