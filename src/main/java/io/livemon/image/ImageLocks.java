package io.livemon.image;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.NonWritableChannelException;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * QEMU's image locking, so that livemon, QEMU and qemu-img do not write one image at the same time.
 *
 * <p>QEMU marks each permission it holds on an image with a shared record lock on byte 100 + permission, and each
 * permission it does not let others have with one on byte 200 + permission; before taking a permission it checks
 * that nobody locked the "not shared" byte, and before refusing one to others that nobody locked the "held" byte.
 * Java's record locks are POSIX locks, which conflict with QEMU's open-file-description locks on Linux, so the same
 * bytes keep both sides apart (qemu-img then says {@code Failed to get shared "write" lock}).
 *
 * <p>A writable image holds consistent read, write and resize and shares neither write nor resize; a read-only one
 * holds consistent read and shares neither write nor resize (QEMU's backing files). Within this JVM the same rules
 * are checked against the other open images of the file. POSIX locks belong to the process and disappear when any
 * descriptor of the file is closed, so each file's locks live on one channel opened for them, and every change
 * re-takes all of them.
 *
 * <p>livemon protects raw images more than QEMU 7.2 does. QEMU's raw format node passes its parents' permissions to
 * the file: a raw disk of a drive without a guest device shares everything and holds write only once a qemu-io write
 * took it for the drive, and a raw backing file shares write and resize, so QEMU lets a new writer in (and, for a raw backing file, lets it
 * overwrite the disk: docs/differences.md). Within this JVM a conflict is therefore checked twice: first as QEMU
 * would check it, for QEMU's message; then by livemon's rule, where a refusal that QEMU would not make is a
 * {@link StricterThanQemu}, so that the opener can first report what QEMU would have failed on next (a header that
 * is not qcow2).
 */
final class ImageLocks {
    private static final int PERM_BASE = 100;
    private static final int SHARED_BASE = 200;
    private static final int CONSISTENT_READ = 0;
    private static final int WRITE = 1;
    private static final int RESIZE = 3;
    private static final String[] PERM_NAMES = {"consistent read", "write", "write unchanged", "resize",
        "change children"};

    /** Guards {@link #FILES} and everything inside each {@link FileLocks}. */
    private static final Object GLOBAL = new Object();
    /**
     * The lock state of every file an image of this JVM has open, by file identity (device and inode, Java's
     * {@code fileKey}): a second name for the same file (a relative or {@code ./} spelling, a symbolic or a hard link)
     * finds the same entry, as QEMU's OFD locks, which belong to the inode, see the same locks.
     */
    private static final Map<Object, FileLocks> FILES = new HashMap<>();

    private ImageLocks() {
    }

    /** What an opener asks for: QEMU's permissions differ for reading, writing an image and creating a file. */
    enum Mode {
        /** A read-only image: consistent read, not sharing write or resize. */
        READ,
        /** A writable image: consistent read, write and resize, not sharing write or resize. */
        WRITE,
        /** Creating an image over an existing file (QEMU's raw_co_create): write and resize, not sharing resize. */
        CREATE,
        /**
         * A raw image opened read-write before anything attaches to it (a job's existing target): QEMU's raw node
         * takes no permission at open, so only livemon's own rule applies ({@link StricterThanQemu}).
         */
        WRITE_UNATTACHED
    }

    /** One open image's claim on its file; {@link #release()} it when the image closes. */
    static final class Lease {
        private final FileLocks file;
        private final String filename;
        private final BooleanSupplier alive;
        /** A raw image: QEMU's raw node holds and shares what its parents do (see {@link #qemuHolds}). */
        private final boolean raw;
        /** Whether the drive above this raw image holds write permission in QEMU's model. */
        private volatile boolean backendWrite;
        private boolean write;
        private boolean released;

        private Lease(FileLocks file, String filename, boolean write, boolean raw, BooleanSupplier alive) {
            this.file = file;
            this.filename = filename;
            this.write = write;
            this.raw = raw;
            this.alive = alive;
        }

        /** Reopening read-write or read-only: QEMU checks the new permissions as at open. */
        void change(boolean newWrite) throws ImageException {
            synchronized (GLOBAL) {
                if (newWrite == write || released) {
                    return;
                }
                try {
                    if (newWrite) {
                        file.check(this, filename, Mode.WRITE);
                    }
                    write = newWrite;
                } finally {
                    file.relock();
                }
            }
        }

        /** Re-takes the file's locks after a descriptor of it was closed (which drops them all). */
        void reassert() {
            synchronized (GLOBAL) {
                if (!released) {
                    file.relock();
                }
            }
        }

        void release() {
            synchronized (GLOBAL) {
                if (released) {
                    return;
                }
                released = true;
                file.leases.remove(this);
                file.relockOrClose();
            }
        }

        boolean holds(int perm) {
            return perm == CONSISTENT_READ || (write && (perm == WRITE || perm == RESIZE));
        }

        boolean unshares(int perm) {
            return perm == WRITE || perm == RESIZE;
        }

        /** See {@link Image#setBackendWritePermission}. */
        void setBackendWrite(boolean held) {
            backendWrite = held;
        }

        /**
         * What QEMU 7.2 would hold for this image: a qcow2 node's file child holds write and resize when writable; a
         * raw node passes on what its parents hold: consistent read, and write only once the drive's BlockBackend
         * took it (a -drive without a guest device holds no write until a qemu-io write; measured with QEMU 7.2:
         * a qcow2 opener of a raw disk in use fails on its header before, on "shared write" after).
         */
        boolean qemuHolds(int perm) {
            if (perm == CONSISTENT_READ) {
                return true;
            }
            if (!write) {
                return false;
            }
            return raw ? perm == WRITE && backendWrite : perm == WRITE || perm == RESIZE;
        }

        /** What QEMU 7.2 would not share: a qcow2 node's file never shares write or resize; a raw node shares all. */
        boolean qemuUnshares(int perm) {
            return !raw && (perm == WRITE || perm == RESIZE);
        }
    }

    /** The locks this JVM holds on one file, and the open images that hold them. */
    private static final class FileLocks {
        private final Object key;
        private final FileChannel channel;
        private final List<Lease> leases = new ArrayList<>();
        private final List<FileLock> locks = new ArrayList<>();

        FileLocks(Object key, FileChannel channel) {
            this.key = key;
            this.channel = channel;
        }

        /**
         * Fails as QEMU does when {@code lease} (new, or becoming writable) conflicts with another image of this JVM
         * or another process: QEMU's raw_check_lock_bytes order, the permissions the opener takes first, then those
         * it does not share. Then livemon's own rule (see the class comment), which refuses with
         * {@link StricterThanQemu}. Drops this JVM's locks on the file for the trial; the caller re-takes them.
         */
        void check(Lease lease, String filename, Mode mode) throws ImageException {
            leases.removeIf(l -> l != lease && !l.alive.getAsBoolean());
            releaseAll();
            int[] held = switch (mode) {
                case READ -> new int[] {CONSISTENT_READ};
                case WRITE -> new int[] {CONSISTENT_READ, WRITE, RESIZE};
                case CREATE -> new int[] {WRITE, RESIZE};
                case WRITE_UNATTACHED -> new int[0];
            };
            int[] unshared = switch (mode) {
                case CREATE -> new int[] {RESIZE};
                case WRITE_UNATTACHED -> new int[0];
                default -> new int[] {WRITE, RESIZE};
            };
            // each byte is tried once: a trial lock is visible to other processes for its moment (a qemu-img that
            // tests the byte then fails), so the two checks share the answers
            Map<Integer, Boolean> elsewhere = new HashMap<>();
            String refusal = firstConflict(lease, held, unshared, true, elsewhere);
            if (refusal != null) {
                throw conflict(refusal, filename);
            }
            int[] strictHeld = mode == Mode.READ ? new int[] {CONSISTENT_READ}
                    : new int[] {CONSISTENT_READ, WRITE, RESIZE};
            refusal = firstConflict(lease, strictHeld, new int[] {WRITE, RESIZE}, false, elsewhere);
            if (refusal != null) {
                throw new StricterThanQemu(refusal + "\nIs another process using the image [" + filename + "]?", -1);
            }
        }

        /**
         * QEMU's message for the first conflict of an opener taking {@code held} and not sharing {@code unshared},
         * null when there is none. This JVM's other images count as QEMU would hold them ({@code asQemu}) or as
         * livemon does.
         */
        private String firstConflict(Lease lease, int[] held, int[] unshared, boolean asQemu,
                                     Map<Integer, Boolean> elsewhere) {
            for (int p : held) {
                boolean local = leases.stream().anyMatch(l -> l != lease && (asQemu ? l.qemuUnshares(p)
                        : l.unshares(p)));
                if (local || elsewhere.computeIfAbsent(SHARED_BASE + p, this::lockedElsewhere)) {
                    return "Failed to get \"" + PERM_NAMES[p] + "\" lock";
                }
            }
            for (int p : unshared) {
                boolean local = leases.stream().anyMatch(l -> l != lease && (asQemu ? l.qemuHolds(p) : l.holds(p)));
                if (local || elsewhere.computeIfAbsent(PERM_BASE + p, this::lockedElsewhere)) {
                    return "Failed to get shared \"" + PERM_NAMES[p] + "\" lock";
                }
            }
            return null;
        }

        /** Whether another process holds a lock on byte {@code b} (a trial exclusive lock fails). */
        private boolean lockedElsewhere(int b) {
            try {
                FileLock trial = channel.tryLock(b, 1, false);
                if (trial == null) {
                    return true;
                }
                trial.release();
                return false;
            } catch (NonWritableChannelException | OverlappingFileLockException | IOException e) {
                // A file we may only read cannot carry the trial lock; its writers are checked by their side.
                return false;
            }
        }

        /** Re-takes every lock the leases need (closing any descriptor of the file dropped them all). */
        private void releaseAll() {
            for (FileLock l : locks) {
                try {
                    l.release();
                } catch (IOException e) {
                    // already gone with a closed descriptor
                }
            }
            locks.clear();
        }

        void relock() {
            releaseAll();
            for (int p = 0; p < PERM_NAMES.length; p++) {
                int perm = p;
                if (leases.stream().anyMatch(l -> l.holds(perm))) {
                    take(PERM_BASE + p);
                }
                if (leases.stream().anyMatch(l -> l.unshares(perm))) {
                    take(SHARED_BASE + p);
                }
            }
        }

        private void take(int b) {
            try {
                FileLock l = channel.tryLock(b, 1, true);
                if (l != null) {
                    locks.add(l);
                }
            } catch (IOException | OverlappingFileLockException e) {
                // best effort: the checks above decided; a lock we cannot take only weakens the protection
            }
        }

        void relockOrClose() {
            if (leases.isEmpty()) {
                FILES.remove(key);
                try {
                    channel.close();
                } catch (IOException e) {
                    // nothing held any more
                }
            } else {
                relock();
            }
        }
    }

    /**
     * Claims {@code path} for an image being opened ({@code raw}: a raw image) or a file being created over.
     * {@code alive} tells whether the image is still open (an image dropped without close, as crash tests do, stops
     * counting). Fails with QEMU's message on a conflict.
     *
     * @throws StricterThanQemu when only livemon's protection of raw images refuses (see the class comment)
     */
    static Lease acquire(Path path, String filename, Mode mode, boolean raw, BooleanSupplier alive)
            throws ImageException {
        Path real = realPath(path);
        Object key = keyOf(real);
        synchronized (GLOBAL) {
            FileLocks file = FILES.get(key);
            if (file == null) {
                file = new FileLocks(key, openLockChannel(real));
                FILES.put(key, file);
            }
            Lease lease = new Lease(file, filename, mode != Mode.READ, raw, alive);
            try {
                file.check(lease, filename, mode);
                file.leases.add(lease);
            } finally {
                file.relockOrClose();
            }
            return lease;
        }
    }

    private static Path realPath(Path path) {
        try {
            return path.toRealPath();
        } catch (IOException e) {
            return path.toAbsolutePath().normalize();
        }
    }

    /** A file's identity: device and inode where the file system tells them, else its real path. */
    private static Object keyOf(Path real) {
        try {
            Object inode = Files.readAttributes(real, BasicFileAttributes.class).fileKey();
            if (inode != null) {
                return inode;
            }
        } catch (IOException e) {
            // the open that follows reports a missing file
        }
        return real;
    }

    /**
     * Closes a channel of an image file, then re-takes this process's locks on the file: closing any descriptor of
     * a file drops every POSIX record lock the process holds on it, so a probe or a refused open of an image that is
     * already open would otherwise leave the open image unprotected against other processes' writes.
     */
    static void close(FileChannel c, Path path) {
        try {
            c.close();
        } catch (IOException e) {
            // a descriptor that was only read or never used: nothing was lost with it
        } finally {
            Object key = keyOf(realPath(path));
            synchronized (GLOBAL) {
                FileLocks file = FILES.get(key);
                if (file != null) {
                    file.relock();
                }
            }
        }
    }

    private static FileChannel openLockChannel(Path key) throws ImageException {
        try {
            return FileChannel.open(key, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (IOException e) {
            try {
                return FileChannel.open(key, StandardOpenOption.READ);
            } catch (IOException e2) {
                throw new ImageException("Could not open '" + key + "': " + e2.getMessage(), e2);
            }
        }
    }

    private static ImageException conflict(String what, String filename) {
        return new ImageException(what + "\nIs another process using the image [" + filename + "]?");
    }
}
