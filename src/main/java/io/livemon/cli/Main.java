package io.livemon.cli;

import io.livemon.Version;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The {@code livemon} command line: QEMU-style options (so that QEMU command lines run unchanged) plus livemon's own.
 * Declared for picocli, which also generates the shell completion scripts from this model.
 */
@Command(name = "livemon", mixinStandardHelpOptions = false, sortOptions = false,
        description = "A QEMU 7.2-compatible human monitor for live block operations on qcow2 images.%n"
                + "Without -drive it creates the demo chain [A] <- [B] <- [C] <- [D] <- [E] and attaches E as virtio0.")
public final class Main implements Callable<Integer> {

    @Option(names = {"-drive", "--drive"}, paramLabel = "OPTS", description = "file=PATH[,if=none|virtio|ide|scsi][,id=ID]"
            + "[,format=qcow2|raw][,node-name=NAME][,backing.node-name=NAME][,readonly=on|off][,cache=MODE]")
    List<String> drives = new ArrayList<>();

    @Option(names = {"-blockdev", "--blockdev"}, paramLabel = "JSON", description = "a node as QEMU's -blockdev: JSON (or dotted "
            + "key=value) with driver qcow2|raw over file (filename) or blkdebug (config, image); node-name, "
            + "backing (node name or null)")
    List<String> blockdevs = new ArrayList<>();

    @Option(names = {"-x", "--script"}, paramLabel = "FILE", description = "replay a monitor script")
    java.nio.file.Path script; // a Path, so that the generated shell completions offer file names

    @Option(names = "--strict", description = "stop a script at the first failing command (exit status 1)")
    boolean strict;

    @Option(names = "--events", description = "print job events even when standard input is not a terminal")
    boolean events;

    @Option(names = "--history", paramLabel = "FILE", description = "history file (default $HOME/.livemon_history)")
    java.nio.file.Path history;

    @Option(names = "--completion-menu", description = "a second Tab cycles through the candidates in a menu "
            + "(by default it lists them, as QEMU and bash do)")
    boolean completionMenu;

    @Option(names = "--keep-demo", description = "keep the demo chain's directory when livemon ends "
            + "(it is removed by default)")
    boolean keepDemo;

    @Option(names = "-qmp", paramLabel = "DEV", description = "serve QMP: unix:PATH,server=on,wait=off or "
            + "tcp:HOST:PORT,server=on,wait=off")
    List<String> qmp = new ArrayList<>();

    @Option(names = "-chardev", paramLabel = "OPTS", description = "socket,id=ID,path=PATH,server=on,wait=off")
    List<String> chardevs = new ArrayList<>();

    @Option(names = "-mon", paramLabel = "OPTS", description = "chardev=ID,mode=control")
    List<String> mons = new ArrayList<>();

    @Option(names = {"-M", "-machine", "--machine"}, paramLabel = "MACHINE",
            description = "none (the only machine; 'help' lists it); accel=... accepted")
    String machine;

    @Option(names = {"-accel", "--accel"}, paramLabel = "ACCEL", description = "qtest|tcg|kvm: accepted (livemon "
            + "runs no guest code)")
    List<String> accels = new ArrayList<>();

    @Option(names = {"-device", "--device"}, paramLabel = "OPTS", description = "virtio-blk|virtio-scsi|scsi-hd"
            + "[,drive=ID][,id=ID]: a guest device a drive is attached to ('help' lists them)")
    List<String> devices = new ArrayList<>();

    @Option(names = "-qtest", paramLabel = "DEV", description = "unix:path=PATH: connect to a qtest server and "
            + "answer its clock commands")
    String qtest;

    @Option(names = "-vga", paramLabel = "TYPE", description = "none: accepted")
    String vga;

    @Option(names = "-nographic", description = "accepted (no display)")
    boolean nographic;

    @Option(names = "-serial", paramLabel = "DEV", description = "none: accepted")
    List<String> serials = new ArrayList<>();

    @Option(names = "-nodefaults", description = "accepted and ignored")
    boolean nodefaults;

    @Option(names = "-display", paramLabel = "TYPE", description = "accepted and ignored")
    String display;

    @Option(names = "-S", description = "start with the VM paused (info status says so)")
    boolean startPaused;

    @Option(names = "-name", paramLabel = "NAME", description = "a name for this instance")
    String name;

    @Option(names = "-monitor", paramLabel = "DEV", description = "stdio (the default) or none: no human monitor "
            + "on standard input (QMP quit ends livemon)")
    String monitor;

    @Option(names = "--version", versionHelp = true, description = "print the version and exit")
    boolean versionRequested;

    @Option(names = {"-h", "--help"}, usageHelp = true, description = "print this help and exit")
    boolean helpRequested;

    /** Whether any of QEMU's own options was given (livemon's own, such as {@code --keep-demo}, do not count). */
    boolean hasQemuOptions() {
        return !drives.isEmpty() || !blockdevs.isEmpty() || !qmp.isEmpty() || !chardevs.isEmpty() || !mons.isEmpty()
                || machine != null || !accels.isEmpty() || !devices.isEmpty() || qtest != null || vga != null
                || nographic || !serials.isEmpty() || nodefaults || display != null || startPaused || name != null
                || monitor != null;
    }

    /**
     * Whether the human monitor reads standard input. QEMU puts a monitor there by default; {@code -monitor none},
     * {@code -qmp stdio}, or {@code -nodefaults} with QMP configured elsewhere and no {@code -monitor} (QEMU's
     * iotests' command line) leave it without one. livemon keeps one with {@code -nodefaults} alone, as its
     * conformance scripts (QEMU's {@code -monitor stdio}) expect.
     */
    boolean humanMonitorOnStdio() {
        if ("none".equals(monitor) || qmp.contains("stdio")) {
            return false;
        }
        return !(nodefaults && monitor == null && (!qmp.isEmpty() || !mons.isEmpty()));
    }

    @Override
    public Integer call() throws Exception {
        return new Launcher(this).run();
    }

    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.getCommandSpec().version("livemon " + Version.LIVEMON_VERSION + " (QEMU " + Version.QEMU_VERSION
                + " monitor behaviour)");
        cl.setOverwrittenOptionsAllowed(true); // QEMU takes an option given twice (iotests: -accel, -display)
        cl.setParameterExceptionHandler((ex, args) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("livemon: " + ex.getMessage());
            err.flush();
            return 1;
        });
        return cl;
    }

    public static void main(String[] args) {
        LogFile.configure();
        System.exit(commandLine().execute(args));
    }
}
