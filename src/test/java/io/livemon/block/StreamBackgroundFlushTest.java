package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.livemon.image.ForwardingImage;
import io.livemon.image.Image;
import io.livemon.image.Images;
import io.livemon.image.QemuTools;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The stream's background flushes ({@code StreamJob.Flusher}): the target is flushed while the copy goes on, and a
 * failed background flush fails the job with the chain left as it was (the kernel reports a write-back error once,
 * so the final fsync alone could not be trusted after it).
 */
class StreamBackgroundFlushTest {
    @TempDir
    Path dir;
    BlockGraph graph;

    /** Counts the flushes of the target and, when told to, fails them. */
    static final class FlushProbe extends ForwardingImage {
        private final Image inner;
        private final boolean fail;
        final AtomicInteger flushes = new AtomicInteger();

        FlushProbe(Image inner, boolean fail) {
            this.inner = inner;
            this.fail = fail;
        }

        @Override
        protected Image delegate() {
            return inner;
        }

        @Override
        public void flush() throws IOException {
            flushes.incrementAndGet();
            if (fail) {
                throw new IOException("fsync failed");
            }
            inner.flush();
        }
    }

    @BeforeEach
    void setUp() {
        // 40 MiB to copy: more than two background-flush intervals
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "base.img", "64M");
        QemuTools.qemuIo(dir, "base.img", "write -P 0x5a 0 24M", "write -P 0x3c 32M 16M");
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "base.img", "-F", "qcow2", "top.img");
        QemuTools.qemuIo(dir, "top.img", "write -P 0x77 1M 64k");
        QemuTools.toRaw(dir, "top.img", "before.raw");
        graph = new BlockGraph(dir);
    }

    @AfterEach
    void tearDown() {
        graph.close();
    }

    private FlushProbe attach(boolean fail) throws Exception {
        FlushProbe top = new FlushProbe(Images.openChain(dir, "top.img", "qcow2", false), fail);
        graph.addOpenedDrive(DriveOptions.parse("file=top.img,if=none,id=virtio0,node-name=node-top"), top);
        return top;
    }

    private Job stream() throws Exception {
        StreamJob.start(graph, new StreamRequest("job0", "virtio0", null, null, null, 0, OnErrorPolicy.REPORT, true,
                false));
        Job job = graph.job("job0");
        await().until(() -> job.status() == JobStatus.CONCLUDED);
        return job;
    }

    @Test
    void flushesWhileCopyingAndCompletes() throws Exception {
        FlushProbe top = attach(false);
        Job job = stream();
        assertThat(job.info().error()).isNull();
        assertThat(top.flushes.get()).isGreaterThanOrEqualTo((int) ((40L << 20) / StreamJob.FLUSH_EVERY) - 1);
        job.dismiss();
        graph.close();
        assertThat(QemuTools.qemuImg(dir, "info", "top.img").stdout()).doesNotContain("backing file");
        assertThat(QemuTools.compare(dir, "before.raw", "top.img").exitCode()).isZero();
        QemuTools.assertClean(dir, "top.img");
    }

    @Test
    void failedBackgroundFlushFailsTheJobAndKeepsTheChain() throws Exception {
        FlushProbe top = attach(true);
        Job job = stream();
        assertThat(top.flushes.get()).isGreaterThanOrEqualTo(1);
        assertThat(job.info().error()).isNotNull();
        job.dismiss();
        graph.close();
        assertThat(QemuTools.qemuImg(dir, "info", "top.img").stdout()).contains("backing file: base.img");
        assertThat(QemuTools.compare(dir, "before.raw", "top.img").exitCode()).isZero();
        QemuTools.assertClean(dir, "top.img");
    }
}
