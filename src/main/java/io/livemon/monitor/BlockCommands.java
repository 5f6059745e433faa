package io.livemon.monitor;

import io.livemon.block.BackupJob;
import io.livemon.block.BlockDevice;
import io.livemon.block.BlockErrors;
import io.livemon.block.BlockException;
import io.livemon.block.BlockGraph;
import io.livemon.block.BlockNode;
import io.livemon.block.DriveCommit;
import io.livemon.block.DriveOptions;
import io.livemon.block.DriveOperations;
import io.livemon.block.ExternalSnapshot;
import io.livemon.block.GuestView;
import io.livemon.block.MirrorJob;
import io.livemon.block.StreamJob;
import io.livemon.block.StreamRequest;

/** Handlers of the block commands: read the arguments, call the typed operation, print what QEMU prints. */
final class BlockCommands {
    private BlockCommands() {
    }

    static void blockStream(HmpSession s, ParsedArgs a) throws BlockException {
        long speed = a.has("speed") ? a.getLong("speed") : 0;
        String base = a.has("base") ? a.getString("base") : null;
        StreamJob.start(s.graph(), StreamRequest.hmp(a.getString("device"), speed, base));
    }

    static void snapshotBlkdev(HmpSession s, ParsedArgs a) throws BlockException {
        String file = a.has("snapshot-file") ? a.getString("snapshot-file") : null;
        String format = a.has("format") ? a.getString("format") : null;
        if (file == null) {
            throw BlockErrors.snapshotFileMissing();
        }
        ExternalSnapshot.take(s.graph(), a.getString("device"), null, file, format, a.getFlag("reuse"), null,
                line -> s.stdout().println(line));
    }

    static void commit(HmpSession s, ParsedArgs a) throws BlockException {
        DriveCommit.commit(s.graph(), a.getString("device"));
    }

    static void driveMirror(HmpSession s, ParsedArgs a) throws BlockException {
        String format = a.has("format") ? a.getString("format") : null;
        MirrorJob.start(s.graph(), MirrorJob.Request.hmp(a.getString("device"), a.getString("target"), format,
                a.getFlag("reuse"), a.getFlag("full")), line -> s.stdout().println(line));
    }

    static void driveBackup(HmpSession s, ParsedArgs a) throws BlockException {
        String format = a.has("format") ? a.getString("format") : null;
        BackupJob.start(s.graph(), BackupJob.Request.hmp(a.getString("device"), a.getString("target"), format,
                a.getFlag("reuse"), a.getFlag("full"), a.getFlag("compress")), line -> s.stdout().println(line));
    }

    static void driveAdd(HmpSession s, ParsedArgs a) throws BlockException {
        if (a.getFlag("node")) {
            throw BlockErrors.nodeNameNeeded();
        }
        DriveOptions o = DriveOptions.parse(a.getString("opts"));
        String ifType = o.get("if");
        if (ifType != null && !ifType.equals("none")) {
            throw BlockErrors.cannotHotAdd(DriveOperations.interfaceCode(ifType));
        }
        s.graph().addDrive(o);
        s.out().println("OK");
    }

    static void driveDel(HmpSession s, ParsedArgs a) throws BlockException {
        DriveOperations.deleteDrive(s.graph(), a.getString("id"));
    }

    static void blockResize(HmpSession s, ParsedArgs a) throws BlockException {
        DriveOperations.resize(s.graph(), a.getString("device"), null, a.getLong("size"));
    }

    static void change(HmpSession s, ParsedArgs a) throws BlockException {
        String mode = a.has("read-only-mode") ? a.getString("read-only-mode") : null;
        DriveOperations.changeMedium(s.graph(), a.getString("device"), a.getString("target"),
                a.has("arg") ? a.getString("arg") : null, a.getFlag("force"), mode);
    }

    static void eject(HmpSession s, ParsedArgs a) throws BlockException {
        DriveOperations.eject(s.graph(), a.getString("device"), a.getFlag("force"));
    }

    static void qemuIo(HmpSession s, ParsedArgs a) throws BlockException {
        String name = a.getString("device");
        BlockGraph g = s.graph();
        BlockNode node;
        if (a.getFlag("qdev")) {
            // livemon has no guest devices, so no qdev id ever matches.
            throw BlockErrors.deviceNotFound(name);
        }
        BlockDevice d = g.device(name);
        if (d != null) {
            if (d.root() == null) {
                throw BlockErrors.noMedium(name);
            }
            node = d.root();
        } else {
            node = g.findNode(name);
            if (node == null) {
                throw BlockErrors.cannotFind("", name);
            }
        }
        // a drive keeps the write permission a qemu-io write takes; a node's temporary BlockBackend drops it
        Runnable takesWrite = d != null ? d::takeBackendWrite : null;
        if (QemuIoCommand.run(new GuestView(node), a.getString("command"), s.stdout(), takesWrite) != 0) {
            s.markCommandFailed();
        }
    }
}
