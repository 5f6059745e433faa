package io.livemon.image;

import java.io.IOException;

/**
 * An image could not be opened, created or used. The message is the one QEMU prints, e.g.
 * {@code Could not open 'x.img': No such file or directory} or
 * {@code Image is not in qcow2 format} — front ends show it as is.
 */
public class ImageException extends IOException {
    public ImageException(String message) {
        super(message);
    }

    public ImageException(String message, Throwable cause) {
        super(message, cause);
    }
}
