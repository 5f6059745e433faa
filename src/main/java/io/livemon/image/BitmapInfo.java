package io.livemon.image;

import java.util.List;

/**
 * One persistent dirty bitmap as {@code qemu-img info} and {@code info block -v} list it (QEMU's Qcow2BitmapInfo):
 * read from the image's bitmap directory on disk.
 *
 * @param name        the bitmap's name
 * @param granularity bytes per bit
 * @param flags       {@code "in-use"} and/or {@code "auto"}, in that order
 */
public record BitmapInfo(String name, long granularity, List<String> flags) {
}
