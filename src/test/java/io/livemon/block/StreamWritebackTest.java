package io.livemon.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.livemon.image.ForwardingImage;
import io.livemon.image.Image;
import io.livemon.image.Images;
import io.livemon.testsupport.QemuTools;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * After a stream has rewritten the target's header, the target is flushed at once in the background (QEMU would
 * leave it to the next flush); a failed write-back is logged and does not undo the completed job.
 */
class StreamWritebackTest {
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

    private FlushProbe streamWith(boolean failingFlush) throws Exception {
        FlushProbe top = new FlushProbe(Images.openChain(dir, "top.img", "qcow2", false), failingFlush);
        graph.addOpenedDrive(DriveOptions.parse("file=top.img,if=none,id=virtio0,node-name=node-top"), top);
        StreamJob.start(graph, StreamRequest.hmp("virtio0", 0, null));
        assertThat(graph.awaitNoJobs(30_000)).isTrue();
        return top;
    }

    @Test
    void theTargetIsFlushedRightAfterItsHeaderChanged() throws Exception {
        FlushProbe top = streamWith(false);
        await().until(() -> top.flushes.get() >= 1);
        assertThat(QemuTools.qemuImg(dir, "info", "-U", "top.img").stdout()).doesNotContain("backing file");
        graph.close();
        assertThat(QemuTools.compare(dir, "before.raw", "top.img").exitCode()).isZero();
        QemuTools.assertClean(dir, "top.img");
    }

    @Test
    void aFailedWriteBackDoesNotUndoTheCompletedStream() throws Exception {
        FlushProbe top = streamWith(true);
        await().until(() -> top.flushes.get() >= 1);
        assertThat(graph.device("virtio0").root().backing()).isNull();
        assertThat(QemuTools.qemuImg(dir, "info", "-U", "top.img").stdout()).doesNotContain("backing file");
        // livemon still holds the image: qemu-img needs -U (force share), as with QEMU running
        assertThat(QemuTools.run(dir, "qemu-img", "compare", "-U", "before.raw", "top.img").exitCode()).isZero();
    }
}
