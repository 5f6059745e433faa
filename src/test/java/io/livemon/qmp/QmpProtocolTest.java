package io.livemon.qmp;

import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/** Transcript 12 (negotiation, ids, error classes, argument errors) and the framing facts of qmp-block.md §1. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class QmpProtocolTest {
    @TempDir
    static Path dir;
    QmpFixture fx;

    static String jsc(String status, String id) {
        return "{\"timestamp\": {\"seconds\": S, \"microseconds\": U}, \"event\": \"JOB_STATUS_CHANGE\", \"data\": "
                + "{\"status\": \"" + status + "\", \"id\": \"" + id + "\"}}";
    }

    static String err(String cls, String desc) {
        return "{\"error\": {\"class\": \"" + cls + "\", \"desc\": \"" + desc + "\"}}";
    }

    static String generic(String desc) {
        return err("GenericError", desc);
    }

    @BeforeAll
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        QmpFixture.mkchain(dir, "64M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "solo.qcow2", "1M");
        fx = new QmpFixture(dir, QmpServer.Limits.DEFAULT, QmpFixture.DRIVE_E, "file=solo.qcow2,if=none,id=solo");
    }

    @AfterAll
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void socketIsOwnerOnly() throws Exception {
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(fx.socket))).isEqualTo("rw-------");
    }

    @Test
    void transcript12() throws Exception {
        try (QmpTestClient c = fx.connect()) {
            assertThat(c.next()).isEqualTo("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, "
                    + "\"major\": 7}, \"package\": \" (livemon 0.1.0)\"}, \"capabilities\": [\"oob\"]}}");
            String[][] steps = {
                {"{\"execute\": \"query-block-jobs\"}",
                    err("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'")},
                {"{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}", "{\"return\": {}}"},
                {"{\"execute\": \"qmp_capabilities\"}",
                    err("CommandNotFound", "Capabilities negotiation is already complete, command ignored")},
                {"{\"execute\": \"query-block-jobs\", \"id\": \"req-1\"}", "{\"return\": [], \"id\": \"req-1\"}"},
                {"{\"execute\": \"query-block-jobs\", \"id\": {\"any\": [\"json\", 1]}}",
                    "{\"return\": [], \"id\": {\"any\": [\"json\", 1]}}"},
                {"{\"execute\": \"nosuch-command\"}",
                    err("CommandNotFound", "The command nosuch-command has not been found")},
                {"{\"execute\": \"block-stream\"}", generic("Parameter 'device' is missing")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", \"speed\": \"fast\"}}",
                    generic("Invalid parameter type for 'speed', expected: integer")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", \"bogus\": 1}}",
                    generic("Parameter 'bogus' is unexpected")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"nosuch\"}}",
                    generic("Cannot find device='nosuch' nor node-name='nosuch'")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", \"job-id\": \"bad id\"}}",
                    generic("Invalid job ID 'bad id'")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", \"backing-file\": \"x.img\"}}",
                    generic("backing file specified, but streaming the entire chain")},
                {"{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"nosuch\"}}",
                    err("DeviceNotActive", "Block job 'nosuch' not found")},
                {"{\"execute\": \"block-job-set-speed\", \"arguments\": {\"device\": \"nosuch\", \"speed\": 1}}",
                    err("DeviceNotActive", "Block job 'nosuch' not found")},
                {"{\"execute\": \"job-cancel\", \"arguments\": {\"id\": \"nosuch\"}}", generic("Job not found")},
                {"{\"execute\": \"eject\", \"arguments\": {\"device\": \"nosuch\"}}",
                    err("DeviceNotFound", "Device 'nosuch' not found")},
                {"{\"execute\": \"block_resize\", \"arguments\": {\"device\": \"nosuch\", \"size\": 1048576}}",
                    generic("Cannot find device='nosuch' nor node-name=''")},
                {"{\"execute\": \"blockdev-snapshot-sync\", \"arguments\": {\"device\": \"nosuch\", "
                    + "\"snapshot-file\": \"s.qcow2\"}}", generic("Cannot find device='nosuch' nor node-name=''")},
                {"{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"block_job_cancel nosuch\"}}",
                    "{\"return\": \"Error: Block job 'nosuch' not found\\r\\n\"}"},
                {"{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"nosuchcmd\"}}",
                    "{\"return\": \"unknown command: 'nosuchcmd'\\r\\n\"}"},
            };
            for (String[] s : steps) {
                assertThat(c.exchange(s[0])).as(s[0]).containsExactly(s[1]);
            }
            // a running, rate-limited stream: busy / verb errors; its start events come before the reply
            assertThat(c.exchange("{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"speed\": 1048576}}")).containsExactly(jsc("created", "virtio0"), jsc("running", "virtio0"),
                    "{\"return\": {}}");
            String[][] busy = {
                {"{\"execute\": \"block-job-set-speed\", \"arguments\": {\"device\": \"virtio0\", \"speed\": -1}}",
                    generic("Parameter 'speed' expects a non-negative value")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\"}}",
                    generic("Node 'virtio0' is busy: block device is in use by block job: stream")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"solo\", \"job-id\": \"virtio0\"}}",
                    generic("Job ID 'virtio0' already in use")},
                {"{\"execute\": \"block-job-complete\", \"arguments\": {\"device\": \"virtio0\"}}",
                    generic("Job 'virtio0' in state 'running' cannot accept command verb 'complete'")},
                {"{\"execute\": \"block-job-finalize\", \"arguments\": {\"id\": \"virtio0\"}}",
                    generic("Job 'virtio0' in state 'running' cannot accept command verb 'finalize'")},
                {"{\"execute\": \"block-job-dismiss\", \"arguments\": {\"id\": \"virtio0\"}}",
                    generic("Job 'virtio0' in state 'running' cannot accept command verb 'dismiss'")},
            };
            for (String[] s : busy) {
                assertThat(c.exchange(s[0])).as(s[0]).containsExactly(s[1]);
            }
            // the cancel events arrive before the reply
            List<String> cancel = c.exchange("{\"execute\": \"block-job-cancel\", \"arguments\": "
                    + "{\"device\": \"virtio0\", \"force\": true}}");
            assertThat(cancel).hasSize(5);
            assertThat(cancel.get(0)).isEqualTo(jsc("aborting", "virtio0"));
            assertThat(cancel.get(1)).matches("\\{\"timestamp\": \\{\"seconds\": S, \"microseconds\": U}, \"event\": "
                    + "\"BLOCK_JOB_CANCELLED\", \"data\": \\{\"device\": \"virtio0\", \"len\": 67108864, \"offset\": "
                    + "\\d+, \"speed\": 1048576, \"type\": \"stream\"}}");
            assertThat(cancel.subList(2, 5)).containsExactly(jsc("concluded", "virtio0"), jsc("null", "virtio0"),
                    "{\"return\": {}}");
        }
    }

    @Test
    void inputMembersAndJsonErrorsAsQemu() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            String[][] steps = {
                {"[1,2]", generic("QMP input must be a JSON object")},
                {"\"str\"", generic("QMP input must be a JSON object")},
                {"{\"execute\": 1}", generic("QMP input member 'execute' must be a string")},
                {"{\"exec\": \"query-status\"}", generic("QMP input member 'exec' is unexpected")},
                {"{}", generic("QMP input lacks member 'execute'")},
                {"{\"execute\": \"query-status\", \"arguments\": []}",
                    generic("QMP input member 'arguments' must be an object")},
                {"{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}, \"id\": 5}",
                    "{\"id\": 5, \"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}"},
                {"{'execute': 'query-status', 'id': 'x'}",
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": \"x\"}"},
                {"{\"execute\": \"query-status\" \"id\": 1}", generic("JSON parse error, expected separator in dict")},
                {"garbage", generic("JSON parse error, invalid keyword 'garbage'")},
                {"}", generic("JSON parse error, expecting value")},
                {"{\"execute\": \"query-status\", \"id\": 1,}", generic("JSON parse error, expecting value")},
                {"{\"execute\": \"query-status\", \"id\" 1}", generic("JSON parse error, missing : in object pair")},
                {"{\"execute\": \"block-job-set-speed\", \"arguments\": {\"device\": \"a\", \"speed\": 1.5}}",
                    generic("Invalid parameter type for 'speed', expected: integer")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", \"on-error\": \"bogus\"}}",
                    generic("Parameter 'on-error' does not accept value 'bogus'")},
                {"{\"execute\": \"block-stream\", \"arguments\": {\"device\": \"virtio0\", \"auto-finalize\": \"yes\"}}",
                    generic("Invalid parameter type for 'auto-finalize', expected: boolean")},
                {"{\"execute\": \"job-cancel\", \"arguments\": {\"id\": \"virtio0\", \"force\": true}}",
                    generic("Parameter 'force' is unexpected")},
                {"{\"execute\": \"query-status\", \"id\": \"a/b\\u00e9\\u20ac\\ud83d\\ude00\\u007f\\t\"}",
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
                        + "\"id\": \"a/b\\u00E9\\u20AC\\uD83D\\uDE00\\u007F\\t\"}"},
                {"{\"execute\": \"query-status\", \"id\": [1.5, -0, 1e3, {\"b\": 1, \"a\": 2, \"z\": 3, \"id\": 4}]}",
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
                        + "\"id\": [1.5, 0, 1000, {\"a\": 2, \"b\": 1, \"z\": 3, \"id\": 4}]}"},
            };
            for (String[] s : steps) {
                assertThat(c.exchange(s[0])).as(s[0]).containsExactly(s[1]);
            }
            // CRLF framing, two commands on one line, one command over two lines
            c.send("{\"execute\": \"query-name\", \"id\": 1}{\"execute\": \"query-name\", \"id\": 2}\r\n");
            assertThat(c.next()).isEqualTo("{\"return\": {}, \"id\": 1}");
            assertThat(c.next()).isEqualTo("{\"return\": {}, \"id\": 2}");
            c.send("{\"execute\":\r\n \"query-version\"\r\n}\r\n");
            assertThat(c.next()).startsWith("{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}");
        }
    }

    /** A repeated key at any depth is QEMU's parse error and runs nothing (last-wins would have run "quit"). */
    @Test
    void duplicateKeysAreParseErrorsAsQemu() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            String dup = generic("JSON parse error, duplicate key");
            for (String in : new String[] {
                "{\"execute\":\"query-status\",\"execute\":\"quit\"}",
                "{\"execute\":\"query-status\",\"arguments\":{\"a\":1,\"a\":2}}",
                "{\"execute\":\"query-status\",\"arguments\":{\"x\":{\"a\":1,\"a\":2}}}",
                "{\"execute\":\"query-status\",\"id\":1,\"id\":2}",
                "{\"execute\":\"query-status\",\"arguments\":[{\"a\":1,\"a\":2}]}"}) {
                assertThat(c.exchange(in)).as(in).containsExactly(dup);
            }
            assertThat(c.exchange("{\"execute\":\"query-status\"}")).containsExactly(
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}");
        }
    }

    @Test
    void tcpListensOnLoopbackByDefault() throws Exception {
        java.net.InetSocketAddress a = fx.server.listenTcp("", 0);
        assertThat(a.getAddress().isLoopbackAddress()).isTrue();
        try (QmpTestClient c = QmpTestClient.tcp(a)) {
            assertThat(c.next()).startsWith("{\"QMP\": ");
            assertThat(c.exchange("{\"execute\": \"qmp_capabilities\"}")).containsExactly("{\"return\": {}}");
            assertThat(c.exchange("{\"execute\": \"query-commands\"}").get(0)).contains("{\"name\": \"block-stream\"}");
        }
    }

    @Test
    void endpointsParse() {
        assertThat(QmpEndpoint.parse(List.of("unix:/tmp/x.sock,server=on,wait=off", "tcp::4444,server,nowait"),
                List.of("socket,id=m0,path=/tmp/y.sock,server=on,wait=off"), List.of("chardev=m0,mode=control")))
                .containsExactly(new QmpEndpoint(Path.of("/tmp/x.sock"), null, 0), new QmpEndpoint(null, "", 4444),
                        new QmpEndpoint(Path.of("/tmp/y.sock"), null, 0));
    }
}
