package io.livemon.image;

import java.io.IOException;

/**
 * The errno values livemon's I/O failures stand for, each with glibc's strerror text, which is what QEMU 7.2 reports
 * (a job's {@code error} field, BLOCK_JOB_ERROR's policy, io-status {@code nospace}). Handling decides on the value:
 * {@link #of} classifies a failure in this one place, from the errno an {@link Failure} carries (raised by livemon's
 * own I/O, e.g. blkdebug) or, for an exception the JDK raised, from the strerror text the JDK puts in its message
 * (Linux FileChannel.write on ENOSPC says "No space left on device"). Unknown failures are EIO, as QEMU turns an
 * error without errno into -EIO.
 */
public enum Errno {
    EPERM(1, "Operation not permitted"),
    ENOENT(2, "No such file or directory"),
    EIO(5, "Input/output error"),
    ENOMEM(12, "Cannot allocate memory"),
    EACCES(13, "Permission denied"),
    EINVAL(22, "Invalid argument"),
    EFBIG(27, "File too large"),
    ENOSPC(28, "No space left on device"),
    EROFS(30, "Read-only file system"),
    ENOTSUP(95, "Operation not supported"),
    EDQUOT(122, "Disk quota exceeded");

    /** The Linux errno number. */
    public final int number;
    /** glibc's strerror text for it. */
    public final String strerror;

    Errno(int number, String strerror) {
        this.number = number;
        this.strerror = strerror;
    }

    /** The errno with this Linux number, or null when livemon does not know it. */
    public static Errno ofNumber(int number) {
        for (Errno e : values()) {
            if (e.number == number) {
                return e;
            }
        }
        return null;
    }

    /**
     * What {@code failure} stands for: the errno the first {@link Failure} in its cause chain carries, else the first
     * exception whose message is a known strerror text, alone or after "...: " (how the JDK and a wrapping
     * layer report an errno), else EIO.
     */
    public static Errno of(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause()) {
            if (t instanceof Failure f) {
                return f.errno();
            }
        }
        for (Throwable t = failure; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m != null) {
                for (Errno e : values()) {
                    if (m.equals(e.strerror) || m.endsWith(": " + e.strerror)) {
                        return e;
                    }
                }
            }
        }
        return EIO;
    }

    /** A new I/O failure carrying this errno, its message the strerror text. */
    public Failure failure() {
        return new Failure(this);
    }

    /** An IOException that carries its errno, so that nothing downstream has to read its text. */
    public static final class Failure extends IOException {
        private static final long serialVersionUID = 1L;
        private final Errno errno;

        Failure(Errno errno) {
            super(errno.strerror);
            this.errno = errno;
        }

        /** The errno this failure stands for. */
        public Errno errno() {
            return errno;
        }
    }
}
