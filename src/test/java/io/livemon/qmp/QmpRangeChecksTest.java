package io.livemon.qmp;

import static io.livemon.qmp.QmpProtocolTest.generic;
import static io.livemon.qmp.QmpProtocolTest.jsc;
import static org.assertj.core.api.Assertions.assertThat;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Out-of-range numbers for the job commands, each answer and its order as QEMU 7.2 gives it (run and recorded). */
class QmpRangeChecksTest {
    @TempDir
    Path dir;
    QmpFixture fx;

    @BeforeEach
    void start() throws Exception {
        Assumptions.assumeTrue(QemuTools.available(), "qemu-img needed");
        fx = QmpFixture.seed(dir, "64M");
    }

    @AfterEach
    void stop() {
        if (fx != null) {
            fx.close();
        }
    }

    private static String mirror(String target, String extra) {
        return "{\"execute\": \"drive-mirror\", \"arguments\": {\"device\": \"virtio0\", \"target\": \"" + target
                + "\", \"sync\": \"full\", \"format\": \"qcow2\""
                + (extra.contains("job-id") ? "" : ", \"job-id\": \"m\"") + extra + "}}";
    }

    @Test
    void granularityIsAUint32ThenARangeThenAPowerOfTwo() throws Exception {
        try (QmpTestClient c = fx.negotiated()) {
            String[][] steps = {
                {", \"granularity\": -1", "Parameter 'granularity' expects uint32_t"},
                {", \"granularity\": 4294967296", "Parameter 'granularity' expects uint32_t"},
                {", \"granularity\": 18446744073709551615", "Parameter 'granularity' expects uint32_t"},
                {", \"granularity\": 18446744073709551616", "Parameter 'granularity' expects uint64"},
                {", \"granularity\": 1.5", "Parameter 'granularity' expects uint64"},
                {", \"granularity\": \"x\"", "Parameter 'granularity' expects uint64"},
                {", \"granularity\": -1, \"speed\": -1", "Parameter 'granularity' expects uint32_t"},
            };
            for (String[] s : steps) {
                assertThat(c.exchange(mirror("nope.qcow2", s[0]))).as(s[0]).containsExactly(generic(s[1]));
            }
            // the type check comes before anything is done: no target file
            assertThat(Files.exists(dir.resolve("nope.qcow2"))).isFalse();
            String[][] semantic = {
                {", \"granularity\": 256", "Parameter 'granularity' expects a value in range [512B, 64MB]"},
                {", \"granularity\": 134217728", "Parameter 'granularity' expects a value in range [512B, 64MB]"},
                {", \"granularity\": 768, \"buf-size\": -1", "Parameter 'granularity' expects a power of 2"},
                {", \"buf-size\": -1", "Invalid parameter 'buf-size'"},
                {", \"buf-size\": -1, \"speed\": -1", "Invalid parameter 'buf-size'"},
                {", \"buf-size\": -1, \"job-id\": \"m x\"", "Invalid parameter 'buf-size'"},
                {", \"speed\": -1, \"job-id\": \"m x\"", "Invalid job ID 'm x'"},
                {", \"speed\": 9223372036854775808", "Invalid parameter type for 'speed', expected: integer"},
            };
            for (String[] s : semantic) {
                assertThat(c.exchange(mirror("m.qcow2", s[0]))).as(s[0]).containsExactly(generic(s[1]));
            }
            // a negative speed: QEMU has created the job when it checks the speed
            assertThat(c.exchange(mirror("m.qcow2", ", \"speed\": -1"))).containsExactly(jsc("created", "m"),
                    jsc("null", "m"), generic("Parameter 'speed' expects a non-negative value"));
            assertThat(c.exchange("{\"execute\": \"drive-backup\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"target\": \"b.qcow2\", \"sync\": \"full\", \"format\": \"qcow2\", \"job-id\": \"b\", "
                    + "\"speed\": -1}}")).containsExactly(jsc("created", "b"), jsc("null", "b"),
                    generic("Parameter 'speed' expects a non-negative value"));
            assertThat(c.exchange("{\"execute\": \"drive-backup\", \"arguments\": {\"device\": \"virtio0\", "
                    + "\"target\": \"b.qcow2\", \"sync\": \"full\", \"format\": \"qcow2\", \"job-id\": \"b x\", "
                    + "\"speed\": -1}}")).containsExactly(generic("Invalid job ID 'b x'"));
            assertThat(c.exchange("{\"execute\": \"query-block-jobs\"}")).containsExactly("{\"return\": []}");
            // an id beyond int64 but within uint64 comes back as the same integer
            assertThat(c.exchange("{\"execute\": \"query-name\", \"id\": 18446744073709551615}"))
                    .containsExactly("{\"return\": {}, \"id\": 18446744073709551615}");
        }
    }
}
