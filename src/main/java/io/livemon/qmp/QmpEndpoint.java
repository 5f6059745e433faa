package io.livemon.qmp;

import java.io.IOException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where QMP is served, from QEMU's command line: {@code -qmp unix:PATH,server=on,wait=off},
 * {@code -qmp tcp:HOST:PORT,server=on,wait=off}, {@code -qmp stdio}, or {@code -chardev socket,id=ID,...} with
 * {@code -mon chardev=ID,mode=control}, where the chardev listens ({@code path=PATH|host=H,port=P,server=on}),
 * connects to a listening client ({@code path=PATH} without server=on, as QEMU's iotests use), or is a socket
 * descriptor livemon inherited ({@code fd=N}, the other end already connected: iotests' {@code fd=3}).
 *
 * @param kind how the connection comes about
 * @param path unix socket path, or null
 * @param host TCP host; empty = loopback
 * @param fd   the inherited descriptor, or -1
 */
public record QmpEndpoint(Kind kind, Path path, String host, int port, int fd) {
    /** How a QMP endpoint gets its connection. */
    public enum Kind { LISTEN, CONNECT, FD, STDIO }

    /** A listening endpoint: a unix socket at {@code path}, or TCP when {@code path} is null. */
    public QmpEndpoint(Path path, String host, int port) {
        this(Kind.LISTEN, path, host, port, -1);
    }

    /** Parses every QMP endpoint of a command line; throws with a message for the user on a bad option. */
    public static List<QmpEndpoint> parse(List<String> qmp, List<String> chardevs, List<String> mons)
            throws IllegalArgumentException {
        List<QmpEndpoint> l = new ArrayList<>();
        for (String q : qmp) {
            l.add(parseQmp(q));
        }
        Map<String, Map<String, String>> devs = new LinkedHashMap<>();
        for (String c : chardevs) {
            String[] parts = c.split(",", 2);
            if (!parts[0].equals("socket")) {
                throw new IllegalArgumentException("-chardev " + c + ": only 'socket' chardevs are supported");
            }
            Map<String, String> o = options(parts.length > 1 ? parts[1] : "", "-chardev " + c);
            String id = o.get("id");
            if (id == null) {
                throw new IllegalArgumentException("-chardev " + c + ": chardev: \"id\" is missing");
            }
            devs.put(id, o);
        }
        for (String m : mons) {
            Map<String, String> o = options(m, "-mon " + m);
            String id = o.get("chardev");
            if (id == null || !devs.containsKey(id)) {
                throw new IllegalArgumentException("-mon " + m + ": chardev \"" + id + "\" not found");
            }
            String mode = o.getOrDefault("mode", "readline");
            if (!mode.equals("control")) {
                throw new IllegalArgumentException("-mon " + m + ": livemon serves only mode=control (QMP) on"
                        + " sockets; the human monitor is on standard input");
            }
            Map<String, String> d = devs.get(id);
            if (d.containsKey("fd")) {
                try {
                    l.add(new QmpEndpoint(Kind.FD, null, null, 0, Integer.parseInt(d.get("fd"))));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("-chardev id=" + id + ": invalid fd '" + d.get("fd") + "'");
                }
                continue;
            }
            if (!isOn(d.getOrDefault("server", "off")) && d.containsKey("path")) {
                l.add(new QmpEndpoint(Kind.CONNECT, Paths.get(d.get("path")), null, 0, -1));
                continue;
            }
            checkServer(d, "-chardev id=" + id);
            if (d.containsKey("path")) {
                l.add(new QmpEndpoint(Paths.get(d.get("path")), null, 0));
            } else if (d.containsKey("port")) {
                l.add(new QmpEndpoint(null, d.getOrDefault("host", ""), Integer.parseInt(d.get("port"))));
            } else {
                throw new IllegalArgumentException("-chardev id=" + id + ": needs path= or host=,port=");
            }
        }
        return l;
    }

    static QmpEndpoint parseQmp(String spec) {
        if (spec.equals("stdio")) {
            return new QmpEndpoint(Kind.STDIO, null, null, 0, -1);
        }
        String[] parts = spec.split(",", 2);
        Map<String, String> o = options(parts.length > 1 ? parts[1] : "", "-qmp " + spec);
        checkServer(o, "-qmp " + spec);
        String dev = parts[0];
        if (dev.startsWith("unix:")) {
            return new QmpEndpoint(Paths.get(dev.substring(5)), null, 0);
        }
        if (dev.startsWith("tcp:")) {
            String hp = dev.substring(4);
            int colon = hp.lastIndexOf(':');
            if (colon < 0) {
                throw new IllegalArgumentException("-qmp " + spec + ": port is missing");
            }
            String host = hp.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
            try {
                return new QmpEndpoint(null, host, Integer.parseInt(hp.substring(colon + 1)));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("-qmp " + spec + ": invalid port");
            }
        }
        throw new IllegalArgumentException("-qmp " + spec + ": livemon serves QMP on unix: and tcp: sockets only");
    }

    private static Map<String, String> options(String s, String what) {
        Map<String, String> o = new LinkedHashMap<>();
        for (String kv : s.isEmpty() ? new String[0] : s.split(",")) {
            int eq = kv.indexOf('=');
            if (eq < 0) {
                // legacy flags: server, nowait
                switch (kv) {
                    case "server" -> o.put("server", "on");
                    case "nowait" -> o.put("wait", "off");
                    default -> o.put(kv, "on");
                }
            } else {
                o.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
        }
        return o;
    }

    private static void checkServer(Map<String, String> o, String what) {
        if (!isOn(o.getOrDefault("server", "off"))) {
            throw new IllegalArgumentException(what + ": livemon only listens (server=on); it does not connect out");
        }
    }

    private static boolean isOn(String v) {
        return v.equals("on") || v.equals("yes") || v.equals("true");
    }

    /** Starts serving on this endpoint: listens, connects, or serves the inherited descriptor or stdio at once. */
    public void listen(QmpServer server) throws IOException {
        switch (kind) {
            case LISTEN -> {
                if (path != null) {
                    server.listenUnix(path);
                } else {
                    server.listenTcp(host, port);
                }
            }
            case CONNECT -> {
                java.nio.channels.SocketChannel c =
                        java.nio.channels.SocketChannel.open(java.net.StandardProtocolFamily.UNIX);
                c.connect(java.net.UnixDomainSocketAddress.of(path));
                server.serve(c, toString());
            }
            case FD -> server.serve(InheritedChannel.of(fd), toString());
            case STDIO -> server.serve(InheritedChannel.of(0, 1), toString());
        }
    }

    @Override
    public String toString() {
        return switch (kind) {
            case LISTEN -> path != null ? "unix:" + path : "tcp:" + host + ":" + port;
            case CONNECT -> "unix:" + path + " (connected)";
            case FD -> "fd=" + fd;
            case STDIO -> "stdio";
        };
    }
}
