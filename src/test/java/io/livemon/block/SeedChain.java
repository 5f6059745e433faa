package io.livemon.block;

import io.livemon.testsupport.QemuTools;
import java.nio.file.Path;

/**
 * The conformance scenarios' chain A <- B <- C <- D <- E (qcow2, made by qemu-img/qemu-io): each layer has its own
 * patterns, and some writes cover a lower layer's data so that which layer wins matters.
 */
final class SeedChain {
    static final String DRIVE = "file=file-E.img,if=none,id=virtio0,node-name=node-E,backing.node-name=node-D,"
            + "backing.backing.node-name=node-C,backing.backing.backing.node-name=node-B,"
            + "backing.backing.backing.backing.node-name=node-A";

    private SeedChain() {
    }

    static void create(Path dir, String size) {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "file-A.img", size);
        QemuTools.qemuIo(dir, "file-A.img", "write -P 0xa1 0 6M", "write -P 0xa2 20M 2M");
        layer(dir, "B", "A", "write -P 0xb1 6M 2M", "write -P 0xb2 1M 1M");
        layer(dir, "C", "B", "write -P 0xc1 8M 2M", "write -P 0xc2 1536k 1M");
        layer(dir, "D", "C", "write -P 0xd1 10M 2M", "write -P 0xd2 7M 512k");
        layer(dir, "E", "D", "write -P 0xe1 12M 1M", "write -P 0xe2 21M 64k");
    }

    private static void layer(Path dir, String name, String backing, String... writes) {
        QemuTools.qemuImg(dir, "create", "-q", "-f", "qcow2", "-b", "file-" + backing + ".img", "-F", "qcow2",
                "file-" + name + ".img");
        QemuTools.qemuIo(dir, "file-" + name + ".img", writes);
    }

    /** Guest-visible content of the chain under {@code top}, as a raw file next to it. */
    static void snapshotContent(Path dir, String top, String raw) {
        QemuTools.toRaw(dir, top, raw);
    }

    static void assertAllClean(Path dir) {
        for (String l : new String[] {"A", "B", "C", "D", "E"}) {
            QemuTools.assertClean(dir, "file-" + l + ".img");
        }
    }
}
