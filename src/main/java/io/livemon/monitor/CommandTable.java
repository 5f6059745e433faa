package io.livemon.monitor;

import java.io.PrintStream;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The monitor's command table and its {@code info} sub-table: every command in one place, with its arguments, help
 * and handler. Parsing, {@code help}, completion, scripts and QMP's human-monitor-command all read it.
 */
public final class CommandTable {
    /** QEMU 7.2 prints these commands' errors without the {@code Error: } prefix. */
    private static final Set<String> BARE_ERRORS = Set.of("commit", "drive_add", "drive_del");

    private static final String T = "\n\t\t\t";

    private final List<HmpCommand> commands = List.of(
            HmpCommand.of("help|?", "name:S?", "[cmd]", "show the help", MonitorCommands::help),
            HmpCommand.of("quit|q", "", "", "quit the emulator", MonitorCommands::quit),
            HmpCommand.of("info", "item:s?", "[subcommand]", "show various information about the system state",
                    (s, a) -> { }),
            HmpCommand.of("commit", "device:B", "device|all",
                    "commit changes to the disk images (if -snapshot is used) or backing files",
                    BlockCommands::commit),
            HmpCommand.of("block_stream", "device:B,speed:o?,base:s?", "device [speed [base]]",
                    "copy data from a backing file into a block device", BlockCommands::blockStream),
            HmpCommand.of("block_job_set_speed", "device:B,speed:o", "device speed",
                    "set maximum speed for a background block operation", JobCommands::setSpeed),
            HmpCommand.of("block_job_cancel", "force:-f,device:B", "[-f] device",
                    "stop an active background block operation (use -f"
                            + "\n\t\t\t if you want to abort the operation immediately"
                            + "\n\t\t\t instead of keep running until data is in sync)",
                    JobCommands::cancel),
            HmpCommand.of("block_job_complete", "device:B", "device",
                    "stop an active background block operation", JobCommands::complete),
            HmpCommand.of("block_job_pause", "device:B", "device",
                    "pause an active background block operation", JobCommands::pause),
            HmpCommand.of("block_job_resume", "device:B", "device",
                    "resume a paused background block operation", JobCommands::resume),
            HmpCommand.of("snapshot_blkdev", "reuse:-n,device:B,snapshot-file:s?,format:s?",
                    "[-n] device [new-image-file] [format]",
                    "initiates a live snapshot" + T + "of device. If a new image file is specified, the"
                            + T + "new image file will become the new root image."
                            + T + "If format is specified, the snapshot file will"
                            + T + "be created in that format."
                            + T + "The default format is qcow2.  The -n flag requests QEMU"
                            + T + "to reuse the image found in new-image-file, instead of"
                            + T + "recreating it from scratch.",
                    BlockCommands::snapshotBlkdev),
            HmpCommand.of("drive_mirror", "reuse:-n,full:-f,device:B,target:s,format:s?",
                    "[-n] [-f] device target [format]",
                    "initiates live storage" + T + "migration for a device. The device's contents are"
                            + T + "copied to the new image file, including data that"
                            + T + "is written after the command is started."
                            + T + "The -n flag requests QEMU to reuse the image found"
                            + T + "in new-image-file, instead of recreating it from scratch."
                            + T + "The -f flag requests QEMU to copy the whole disk,"
                            + T + "so that the result does not need a backing file." + T,
                    BlockCommands::driveMirror),
            HmpCommand.of("drive_backup", "reuse:-n,full:-f,compress:-c,device:B,target:s,format:s?",
                    "[-n] [-f] [-c] device target [format]",
                    "initiates a point-in-time" + T + "copy for a device. The device's contents are"
                            + T + "copied to the new image file, excluding data that"
                            + T + "is written after the command is started."
                            + T + "The -n flag requests QEMU to reuse the image found"
                            + T + "in new-image-file, instead of recreating it from scratch."
                            + T + "The -f flag requests QEMU to copy the whole disk,"
                            + T + "so that the result does not need a backing file."
                            + T + "The -c flag requests QEMU to compress backup data"
                            + T + "(if the target format supports it)." + T,
                    BlockCommands::driveBackup),
            HmpCommand.of("drive_add", "node:-n,pci_addr:s,opts:s", "[-n] [[<domain>:]<bus>:]<slot>\n"
                            + "[file=file][,if=type][,bus=n]\n[,unit=m][,media=d][,index=i]\n"
                            + "[,snapshot=on|off][,cache=on|off]\n[,readonly=on|off][,copy-on-read=on|off]",
                    "add drive to PCI storage controller", BlockCommands::driveAdd),
            HmpCommand.of("drive_del", "id:B", "device", "remove host block device", BlockCommands::driveDel),
            HmpCommand.of("block_resize", "device:B,size:o", "device size", "resize a block image",
                    BlockCommands::blockResize),
            HmpCommand.of("change", "device:B,force:-f,target:F,arg:s?,read-only-mode:s?",
                    "device [-f] filename [format [read-only-mode]]",
                    "change a removable medium, optional format, use -f to force the operation",
                    BlockCommands::change),
            HmpCommand.of("eject", "force:-f,device:B", "[-f] device",
                    "eject a removable medium (use -f to force it)", BlockCommands::eject),
            HmpCommand.of("qemu-io", "qdev:-d,device:B,command:s", "[-d] [device] \"[command]\"",
                    "run a qemu-io command on a block device"
                            + T + "-d: [device] is a device ID rather than a drive ID or node name",
                    BlockCommands::qemuIo),
            HmpCommand.extension("wait_jobs", "timeout:i?", "[seconds]",
                    "wait until no block job is left (livemon; default timeout 60 s)",
                    MonitorCommands::waitJobs),
            HmpCommand.extension("sleep", "ms:i", "milliseconds",
                    "pause the monitor for a while, jobs keep running (livemon)", MonitorCommands::sleep));

    private final List<HmpCommand> infoCommands = List.of(
            HmpCommand.of("version", "", "", "show the version of QEMU", InfoCommands::version),
            HmpCommand.of("status", "", "", "show the current VM status (running|paused)", InfoCommands::status),
            HmpCommand.of("history", "", "", "show the command line history", InfoCommands::history),
            HmpCommand.of("block", "nodes:-n,verbose:-v,device:B?", "[-n] [-v] [device]",
                    "show info of one block device or all block devices (-n: show named nodes; -v: show details)",
                    InfoCommands::block),
            HmpCommand.of("blockstats", "", "", "show block device statistics", InfoCommands::blockstats),
            HmpCommand.of("block-jobs", "", "", "show progress of ongoing block device operations",
                    InfoCommands::blockJobs));

    /** Parsed args_type per command, built on first use. */
    private final Map<HmpCommand, ArgSpec> specs = new ConcurrentHashMap<>();

    public List<HmpCommand> commands() {
        return commands;
    }

    public List<HmpCommand> infoCommands() {
        return infoCommands;
    }

    public HmpCommand find(String name) {
        for (HmpCommand c : commands) {
            if (c.hasName(name)) {
                return c;
            }
        }
        return null;
    }

    public HmpCommand findInfo(String name) {
        for (HmpCommand c : infoCommands) {
            if (c.hasName(name)) {
                return c;
            }
        }
        return null;
    }

    ArgSpec spec(HmpCommand c) {
        return specs.computeIfAbsent(c, k -> {
            ArgSpec spec = ArgSpec.parse(k.argsType());
            // livemon accepts the seed's "block_stream DEVICE BASE" (see ../shared/README.md).
            return k.name().equals("block_stream") ? spec.withSizeOrString("speed") : spec;
        });
    }

    static boolean bareErrors(HmpCommand c) {
        return BARE_ERRORS.contains(c.name());
    }

    /** {@code help info}: sorted by name, as QEMU's help_cmd sorts its tables. */
    void printInfoHelp(PrintStream out) {
        for (HmpCommand c : sortedByName(infoCommands)) {
            out.println(c.helpLine("info "));
        }
    }

    static List<HmpCommand> sortedByName(List<HmpCommand> l) {
        return l.stream().sorted(java.util.Comparator.comparing(HmpCommand::name)).toList();
    }
}
