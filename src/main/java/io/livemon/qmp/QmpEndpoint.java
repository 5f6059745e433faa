package io.livemon.qmp;

import java.io.IOException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a QMP server listens, from QEMU's command line: {@code -qmp unix:PATH,server=on,wait=off},
 * {@code -qmp tcp:HOST:PORT,server=on,wait=off}, or {@code -chardev socket,id=ID,path=PATH|host=H,port=P,server=on,
 * wait=off} with {@code -mon chardev=ID,mode=control}. Only listening (server) sockets are supported.
 *
 * @param path unix socket path, or null for TCP
 * @param host TCP host; empty = loopback
 */
public record QmpEndpoint(Path path, String host, int port) {

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

    /** Starts listening on this endpoint. */
    public void listen(QmpServer server) throws IOException {
        if (path != null) {
            server.listenUnix(path);
        } else {
            server.listenTcp(host, port);
        }
    }

    @Override
    public String toString() {
        return path != null ? "unix:" + path : "tcp:" + host + ":" + port;
    }
}
