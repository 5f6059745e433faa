#!/usr/bin/env python3
"""Differential fuzzer: seeded random monitor scripts on real QEMU 7.2 and on livemon.

For each seed it builds a random backing chain with qemu-img/qemu-io in a fresh temp dir, generates a random HMP
script (guest I/O through qemu-io, block jobs, job verbs, snapshots, bad arguments), runs the same script on
byte-identical copies of the dir with QEMU and with livemon, prompt by prompt, and compares what a user could notice:
the normalised transcript, the device's final chain, its guest-visible content, `qemu-img check` of every qcow2, and
the fate of every file in the dir (a file the script did not name as a target must keep its sha256).

Standard library only (python 3.11).  Usage:

    fuzz/difffuzz.py --seeds 0-199 [--jobs 2] [--keep-failures DIR] [--budget-seconds N]
    fuzz/difffuzz.py --replay SEED [--emit-scenario DIR]
    fuzz/difffuzz.py --seeds 0-49 --self-check        # QEMU against QEMU: finds timing-dependent output

See docs/testing.md.  The conformance harness (../shared/conformance/run) follows the same driving and masking
conventions; this file is self-contained so that it runs on a bare clone.
"""

import argparse
import concurrent.futures
import configparser
import difflib
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
DELIBERATE_FILE = os.path.join(HERE, "deliberate-differences.txt")
FIXED_ARGS = ["-M", "none", "-nodefaults", "-display", "none"]
PROMPT = b"(qemu) "
DEVICE = "virtio0"

CMD_TIMEOUT = 30.0       # seconds for one prompt
WAIT_CAP = 30.0          # '#! wait' / '#! wait-ready' give up after this
EXIT_TIMEOUT = 20.0
POLL = 0.1

JOB_LINE = re.compile(
    r"^(?P<head>Streaming device (?P<sdev>\S+)|Type (?P<type>\S+), device (?P<dev>\S+)): "
    r"Completed (?P<x>\d+) of (?P<y>\d+) bytes, speed limit (?P<speed>\d+) bytes/s$")
IO_TIMING = re.compile(r"^(.*, \d+ ops; ).*\(.*/sec and .* ops/sec\)$")
NODE_NAME = re.compile(r"#block\d+")
CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")


class FuzzError(Exception):
    """The environment or the fuzzer itself failed (not a divergence)."""


# ===================================================================================================================
# the generator: one seed -> setup.sh, drive.args, script.hmp

K, M = 1024, 1024 * 1024


class Case:
    def __init__(self, seed):
        self.seed = seed
        self.setup = []          # sh lines, run with `sh -e` in the empty dir
        self.drive_args = ""
        self.script = []         # monitor lines and '#!' directives
        self.targets = set()     # paths (relative to the dir) named by a creating/overwriting command
        self.unstable = set()    # targets whose content depends on timing (a job cancelled mid-copy)
        self.features = set()    # short tags: what this seed exercises (for classification)
        self.fifo = False

    def text(self):
        return ("# setup.sh\n" + "\n".join(self.setup) + "\n# drive.args\n" + self.drive_args +
                "\n# script.hmp\n" + "\n".join(self.script) + "\n")


def _size(r, raw=False):
    x = r.random()
    if x < 0.06:
        return 0
    if x < 0.40:
        return r.choice([64 * K, 512 * K, 1 * M, 2 * M, 3 * M, 4 * M, 6 * M])
    if x < 0.85 or raw:
        return r.randint(1, 8192) * 512
    return r.randint(1, 4 * M)          # odd: qemu-img rounds a qcow2 size up to 512


def _round(size):
    return (size + 511) // 512 * 512


def _extent(r, size, align=True):
    """(offset, length) inside [0, size), or None when size is 0."""
    if size < 512:
        return None
    if align or r.random() < 0.8:
        off = r.randrange(0, size // 512) * 512
        ln = r.randint(1, max(1, min(2 * M, size - off) // 512)) * 512
        if r.random() < 0.5:
            ln = min(ln, 64 * K)
        return off, ln
    off = r.randrange(0, size - 1)
    return off, r.randint(1, min(128 * K, size - off))


def _speed_bytes(sp):
    """An HMP speed argument as bytes/s (-1 for a negative one); a plain number is MiB/s, as HMP's 'o' type reads it."""
    m = re.fullmatch(r"(-?\d+)([kKMG]?)", sp)
    if not m:
        return -1
    return int(m.group(1)) * {"": 1 << 20, "k": 1024, "K": 1024, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def _hmp_size(r, n):
    """n bytes written the way a user might (plain, k, M)."""
    if n % M == 0 and n and r.random() < 0.5:
        return "%dM" % (n // M)
    if n % K == 0 and n and r.random() < 0.5:
        return "%dk" % (n // K)
    return str(n)


# Divergence kinds the generator can steer around (--avoid), so that a long run is not dominated by kinds already
# known and being fixed.  The avoid set is part of a seed's identity: replay a seed with the same --avoid.
AVOIDABLE = {
    "discard": "guest discard (QEMU's -drive default is discard=ignore)",
    "target-in-chain": "snapshot/mirror/backup targets that are images of the open chain",
    "reuse-size": "existing spare targets of another size than the disk (mirror/backup -n, snapshot -n)",
    "compress": "drive_backup -c",
    "commit-short": "commit when some layer is smaller than the one above it",
    "subdir-backing-node-name": "backing.node-name on a -drive whose images are in a subdirectory",
    "commit-while-job": "commit while a job may be running",
    "raw-probe": "existing raw targets named without a format (QEMU probes and warns)",
    "backup-other-dir": "drive_backup without -f (sync top) into a directory other than the disk's",
    "snapshot-reuse": "snapshot_blkdev -n (QEMU's json: filename)",
    "base-cwd": "block_stream base names relative to the working directory instead of the image directory",
    "subdir-strings": "in a subdirectory: new images beside the disk, a stream whose base is the immediate backing",
}


def generate(seed, fifo=False, avoid=frozenset()):
    r = random.Random(seed)
    c = Case(seed)
    c.avoid = avoid
    depth = r.randint(1, 6)
    subdir = r.random() < 0.3
    raw_base = r.random() < 0.2
    d = "img/" if subdir else ""
    if subdir:
        c.features.add("subdir")
        c.setup += ["mkdir img", "cd img"]
    if raw_base:
        c.features.add("raw-base")
    layers = []                  # dicts: name, fmt, size
    extents = []                 # (off, len, pattern): writes a read -P may check
    for i in range(depth):
        name = "file-%s.img" % "ABCDEF"[i]
        if i == 0 and raw_base:
            size = _size(r, raw=True)
            fmt = "raw"
            c.setup.append("qemu-img create -q -f raw %s %d" % (name, size))
        else:
            fmt = "qcow2"
            cl = 1 << r.choice([9, 10, 12, 16, 16, 16, 17, 20, 21])
            opts = "-o cluster_size=%d" % cl
            if cl != 65536:
                c.features.add("cluster-%d" % cl)
            if i == 0:
                size = _size(r)
                c.setup.append("qemu-img create -q -f qcow2 %s %s %d" % (opts, name, size))
            else:
                prev = layers[-1]
                if r.random() < 0.3:
                    size = _size(r)
                    if "commit-short" in avoid:
                        size = max(size, prev["size"])
                    c.features.add("mismatched-sizes")
                    c.setup.append("qemu-img create -q -f qcow2 %s -b %s -F %s %s %d"
                                   % (opts, prev["name"], prev["fmt"], name, size))
                else:
                    size = prev["size"]
                    c.setup.append("qemu-img create -q -f qcow2 %s -b %s -F %s %s"
                                   % (opts, prev["name"], prev["fmt"], name))
            size = _round(size)
        if size == 0:
            c.features.add("zero-size")
        writes = []
        for k in range(r.randint(0, 3)):
            e = _extent(r, size, align=(fmt == "raw"))
            if e:
                pat = 0xa0 + 0x10 * i + k + 1 if i < 6 else 0x99
                pat &= 0xff
                writes.append("-c 'write -P 0x%02x %d %d'" % (pat, e[0], e[1]))
                extents.append((e[0], e[1], pat))
        if writes:
            c.setup.append("qemu-io -f %s %s %s >/dev/null" % (fmt, " ".join(writes), name))
        layers.append({"name": name, "fmt": fmt, "size": size})
    if subdir:
        c.setup.append("cd ..")
    top = layers[-1]
    size = top["size"]

    # spare files a snapshot/mirror/backup may name (or that must simply survive)
    spares = []
    if r.random() < 0.6:
        ssize = size if r.random() < 0.6 else _round(_size(r))
        ssize = size if "reuse-size" in avoid else ssize
        c.setup.append("qemu-img create -q -f qcow2 spare.qcow2 %d" % ssize)
        if ssize >= 512:
            c.setup.append("qemu-io -f qcow2 -c 'write -P 0x5a 0 %d' spare.qcow2 >/dev/null" % min(ssize, 64 * K))
        spares.append(("spare.qcow2", "qcow2"))
    if r.random() < 0.4:
        ssize = size if r.random() < 0.6 else _round(_size(r, raw=True))
        ssize = size if "reuse-size" in avoid else ssize
        c.setup.append("qemu-img create -q -f raw spare.raw %d" % ssize)
        if ssize >= 512:
            c.setup.append("qemu-io -f raw -c 'write -P 0x5b 0 %d' spare.raw >/dev/null" % min(ssize, 64 * K))
        spares.append(("spare.raw", "raw"))
    if r.random() < 0.5:
        c.setup.append("printf 'user data, not an image\\n' > notes.txt")
        spares.append(("notes.txt", None))
    if fifo and r.random() < 0.2:
        c.setup.append("mkfifo pipe.img")
        spares.append(("pipe.img", None))
        c.fifo = True

    # the drive
    opts = ["file=%s%s" % (d, top["name"]), "if=none", "id=" + DEVICE]
    node_top = node_back = None
    if r.random() < 0.7:
        node_top = "node-top"
        opts.append("node-name=" + node_top)
    if depth > 1 and r.random() < 0.3 and not (subdir and "subdir-backing-node-name" in avoid):
        node_back = "node-back"
        opts.append("backing.node-name=" + node_back)
    if top["fmt"] == "raw":
        if r.random() < 0.8:
            opts.append("format=raw")
    elif r.random() < 0.3:
        opts.append("format=qcow2")
    c.drive_args = "-drive " + ",".join(opts)

    # the script
    g = _ScriptGen(r, c, layers, d, size, spares, node_top, node_back, extents)
    g.run()
    return c


class _ScriptGen:
    """Emits commands at quiescent points only: a job is started and then either waited for, or known to be
    rate-limited so slowly that it is still running whatever the timing, or (mirror) waited for until ready."""

    def __init__(self, r, c, layers, d, size, spares, node_top, node_back, extents):
        self.r, self.c, self.layers, self.d, self.size = r, c, layers, d, size
        self.spares, self.node_top, self.node_back = spares, node_top, node_back
        self.extents = list(extents)
        self.job = None          # None | 'stream' (slow, running) | 'mirror' (ready): what may be running
        self.job_speed = 0       # the running stream's limit, bytes/s
        self.paused = False
        self.fast = False        # the paused stream's limit was lifted: resuming it lets it run to the end
        self.n = 0               # counter for new file names
        self.guest_pat = 0x10

    def emit(self, line):
        self.c.script.append(line)

    def run(self):
        r = self.r
        for _ in range(r.randint(3, 14)):
            x = r.random()
            if x < 0.25:
                self.guest_io()
            elif x < 0.33:
                self.emit(r.choice(["info block", "info block-jobs"]))
            elif x < 0.45:
                self.stream()
            elif x < 0.52:
                self.commit()
            elif x < 0.62:
                self.snapshot()
            elif x < 0.72:
                self.mirror()
            elif x < 0.79:
                self.backup()
            elif x < 0.93:
                self.verb()
            else:
                self.invalid()
        # A mirror still running at quit is force-cancelled: whether the target got the last guest writes depends on
        # timing.  Cancelling a ready mirror first makes QEMU bring the target up to date (seed 1095).
        if self.job and (r.random() < 0.5 or self.job == "mirror"):
            if self.paused:                     # QEMU refuses to cancel a paused job
                self.emit("block_job_resume %s" % DEVICE)
                self.emit("#! settle")
            self.emit("block_job_cancel %s" % DEVICE)
            self.emit("#! wait")
            self.job = None
        if r.random() < 0.7:
            self.emit("info block-jobs")
        self.emit("quit")

    # ---- guest I/O through qemu-io
    def guest_io(self):
        r = self.r
        e = _extent(r, self.size, align=r.random() < 0.8)
        if e is None:
            self.emit('qemu-io %s "write -P 0x11 0 512"' % DEVICE)     # beyond the end of a 0-byte disk
            return
        off, ln = e
        x = r.random()
        if x < 0.45:
            self.guest_pat = (self.guest_pat + 1) & 0x7f
            self.emit('qemu-io %s "write -P 0x%02x %d %s"' % (DEVICE, self.guest_pat, off, _hmp_size(r, ln)))
            self.extents.append((off, ln, self.guest_pat))
            self.c.features.add("guest-write")
        elif x < 0.55:
            self.emit('qemu-io %s "write -z %d %d"' % (DEVICE, off, ln))
            self.extents.append((off, ln, 0))
            self.c.features.add("write-zeroes")
        elif x < 0.65 and "discard" not in self.c.avoid:
            self.emit('qemu-io %s "discard %d %d"' % (DEVICE, off, ln))
            self.c.features.add("discard")
        else:
            if self.extents and r.random() < 0.7:
                off, ln, pat = r.choice(self.extents)
                if off + ln > self.size:
                    ln = max(1, self.size - off)
            else:
                pat = r.choice([0, 0xa1, 0xb1])
            self.emit('qemu-io %s "read -P 0x%02x %d %d"' % (DEVICE, pat, off, ln))

    # ---- names the user may give
    def chain_name(self, cwd_relative=False):
        """Some image of the initial chain, as a user might name it."""
        lay = self.r.choice(self.layers)
        return (self.d if cwd_relative else "") + lay["name"]

    def new_name(self, stem, ext="qcow2"):
        self.n += 1
        where = self.d if (self.d and self.r.random() < 0.5) else ""
        if "subdir-strings" in self.c.avoid:
            where = ""
        return "%s%s%d.%s" % (where, stem, self.n, ext)

    def target(self, stem, allow_existing=True):
        """(path, kind) for a creating command."""
        r = self.r
        x = r.random()
        if x < 0.55 or not allow_existing:
            return self.new_name(stem), "new"
        if x < 0.75 and self.spares:
            name, _ = r.choice(self.spares)
            return name, "existing"
        if x < 0.85:
            self.c.features.add("missing-dir")
            return "nodir/%s.qcow2" % stem, "missing-dir"
        if x < 0.93 and "target-in-chain" not in self.c.avoid:
            self.c.features.add("target-in-chain")
            return self.d + r.choice(self.layers)["name"], "chain"
        return self.new_name(stem), "new"

    def speed(self, slow):
        r = self.r
        if slow:
            return r.choice(["1k", "2k", "4k", "4096", "2048"])
        return r.choice(["0", "0", "0", "100M", "1G"])

    # ---- jobs
    def stream(self):
        r = self.r
        c = self.c
        if self.job:
            # A job may be running, or may have ended at once: only commands whose outcome does not race with it.
            return self.verb()
        slow = r.random() < 0.4
        sp = self.speed(slow)
        args = [DEVICE]
        x = r.random()
        if x < 0.35:
            args.append(sp) if (slow or r.random() < 0.5) else None
        else:
            args.append(sp)
            y = r.random()
            if y < 0.45:
                args.append(self.chain_name())
                if self.d and "subdir-strings" in c.avoid and len(self.layers) > 1 and \
                        args[-1] == self.layers[-2]["name"]:
                    args[-1] = self.layers[0]["name"]
            elif y < 0.6 and self.d:
                args.append(self.chain_name(cwd_relative="base-cwd" not in c.avoid))
                c.features.add("base-cwd-relative")
            elif y < 0.7 and self.node_back:
                args.append(self.node_back)
            elif y < 0.8 and self.node_top:
                args.append(self.node_top)
            elif y < 0.9:
                args.append("nosuch.img")
            else:
                args.append("./" + self.chain_name())
            c.features.add("stream-base")
        c.features.add("stream")
        self.emit("block_stream " + " ".join(args))
        if slow and len(args) > 1 and args[1] == sp:
            # A stream that had to copy sleeps ~512 KiB / speed (minutes here) after its first chunk; one with nothing
            # (more) to copy ends at once.  Half a second decides which, whatever the timing.
            self.emit("#! settle")
            self.job = "stream"
            self.paused = False
            self.fast = False
            self.job_speed = _speed_bytes(sp)
        else:
            self.emit("#! wait")

    def commit(self):
        r = self.r
        if ("commit-while-job" in self.c.avoid and self.job) or \
                ("commit-short" in self.c.avoid and "mismatched-sizes" in self.c.features):
            return self.emit("info block")
        self.c.features.add("commit")
        x = r.random()
        if x < 0.7:
            self.emit("commit %s" % DEVICE)
        elif x < 0.85:
            self.emit("commit all")
        elif x < 0.93 and self.node_top:
            self.emit("commit %s" % self.node_top)
        else:
            self.emit("commit nodev")

    def snapshot(self):
        r = self.r
        self.c.features.add("snapshot")
        path, kind = self.target("snap")
        reuse = kind == "existing" and r.random() < 0.5
        reuse = reuse and "snapshot-reuse" not in self.c.avoid
        fmt = r.choice(["qcow2", "qcow2", "", "raw"]) if not reuse else r.choice(["qcow2", ""])
        if path:
            self.c.targets.add(path)
        line = "snapshot_blkdev %s%s %s %s" % ("-n " if reuse else "", DEVICE, path, fmt)
        self.emit(line.rstrip())
        if self.job == "stream" and not self.paused:
            # the transaction's drains let a throttled stream copy a step or two (scenario 40): it may end now
            self.emit("#! settle")

    def mirror(self):
        r = self.r
        c = self.c
        c.features.add("mirror")
        if self.job:
            return self.snapshot()
        path, kind = self.target("mir", allow_existing=True)
        flags = []
        if kind == "existing" and r.random() < 0.7:
            flags.append("-n")
            c.features.add("mirror-reuse")
        if r.random() < 0.5:
            flags.append("-f")
        fmt = r.choice(["qcow2", "qcow2", "raw", ""])
        if not fmt and kind == "existing" and "raw-probe" in c.avoid:
            fmt = dict(self.spares).get(path) or "qcow2"
        c.targets.add(path)
        self.emit(("drive_mirror %s %s %s %s" % (" ".join(flags), DEVICE, path, fmt)).replace("  ", " ").strip())
        self.emit("#! wait-ready %s" % DEVICE)
        self.job = "mirror"
        self.paused = False

    def backup(self):
        r = self.r
        c = self.c
        c.features.add("backup")
        if self.job:
            return self.commit()
        path, kind = self.target("bak", allow_existing=True)
        flags = []
        if kind == "existing" and r.random() < 0.7:
            flags.append("-n")
        if r.random() < 0.5:
            flags.append("-f")
        if "-f" not in flags and "backup-other-dir" in c.avoid and os.path.dirname(path) != self.d.rstrip("/"):
            flags.append("-f")
        if r.random() < 0.05 and "compress" not in c.avoid:
            flags.append("-c")
            c.features.add("backup-compress")
        fmt = r.choice(["qcow2", "qcow2", "raw", ""])
        if not fmt and kind == "existing" and "raw-probe" in c.avoid:
            fmt = dict(self.spares).get(path) or "qcow2"
        c.targets.add(path)
        self.emit(("drive_backup %s %s %s %s" % (" ".join(flags), DEVICE, path, fmt)).replace("  ", " ").strip())
        self.emit("#! wait")

    def verb(self):
        r = self.r
        dev = DEVICE if r.random() < 0.9 else "nodev"
        v = r.choice(["pause", "resume", "cancel", "complete", "set_speed", "set_speed"])
        if v == "set_speed":
            if self.job == "mirror":
                sp = r.choice(["0", "100M", "-1", "1G"])
            elif self.job == "stream":
                # raising the limit (or 0) ends the job's rate-limit sleep, lowering it or the same again does not
                # (blockjob.c block_job_set_speed_locked); "4096" is 4096 MiB/s
                sp = r.choice(["1k", "4096", "-1", "3k", "0", "2k"])
            else:
                sp = r.choice(["0", "4k", "-5"])
            self.emit("block_job_set_speed %s %s" % (dev, sp))
            if dev == DEVICE and self.job == "stream":
                if sp == "0" and not self.paused:
                    self.emit("#! wait")
                    self.job = None
                elif sp == "0":
                    self.fast = True
                elif not self.paused:
                    # a faster limit wakes the job: it copies one more chunk and either ends or sleeps for minutes
                    self.emit("#! settle")
            return
        self.emit("block_job_%s %s" % (v, dev))
        if dev != DEVICE or not self.job:
            return
        if v == "pause":
            self.paused = True
        elif v == "resume":
            self.paused = False
            if self.job == "stream" and self.fast:
                self.emit("#! wait")
                self.job = None
            elif self.job == "stream":
                self.emit("#! settle")       # resumed: one more chunk, then it ends or sleeps for minutes
        elif (v == "cancel" or (v == "complete" and self.job == "mirror")) and not self.paused:
            # (QEMU 7.2 refuses to cancel a paused job: "The block job for device 'virtio0' is currently paused")
            self.emit("#! wait")
            self.job = None
            self.paused = False

    def invalid(self):
        r = self.r
        self.c.features.add("invalid")
        self.emit(r.choice([
            "block_stream nodev",
            "block_stream %s -1" % DEVICE,
            "block_stream %s 1Q" % DEVICE,
            "block_job_set_speed %s" % DEVICE,
            "block_job_set_speed nodev 0",
            "drive_mirror %s" % DEVICE,
            "drive_backup nodev x.qcow2",
            "snapshot_blkdev",
            "snapshot_blkdev nodev s.qcow2",
            "commit",
            "info block nodev",
            "block_job_cancel",
        ]))


# ===================================================================================================================
# rendering and masking (the conformance harness's conventions)

def render(text):
    """Terminal rendering: apply cursor-left/right and erase-to-end sequences, drop CRs."""
    lines, line, cur, i, n = [], [], 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\x1b":
            m = CSI.match(text, i)
            if not m:
                i += 2
                continue
            arg, fin = m.group(1), m.group(2)
            cnt = int(arg) if arg.isdigit() else 1
            if fin == "K":
                if not arg or arg == "0":
                    del line[cur:]
                elif arg == "2":
                    line = []
            elif fin == "D":
                cur = max(0, cur - cnt)
            elif fin == "C":
                cur += cnt
            elif fin == "G":
                cur = max(0, cnt - 1)
            i = m.end()
            continue
        if ch == "\r":
            cur = 0
        elif ch == "\n":
            lines.append("".join(line))
            line, cur = [], 0
        elif ch == "\b":
            cur = max(0, cur - 1)
        elif ch != "\x07":
            if cur > len(line):
                line.extend(" " * (cur - len(line)))
            if cur < len(line):
                line[cur] = ch
            else:
                line.append(ch)
            cur += 1
        i += 1
    if line:
        lines.append("".join(line))
    return lines


def mask(line, tmp, extra):
    for t in ({tmp, os.path.realpath(tmp)} if tmp else ()):
        line = line.replace(t + "/", "").replace(t, "<tmp>")
    m = JOB_LINE.match(line)
    if m:
        y = "<Y>" if m.group("type") == "mirror" else m.group("y")
        line = "%s: Completed <X> of %s bytes, speed limit %s bytes/s" % (m.group("head"), y, m.group("speed"))
    m = IO_TIMING.match(line)
    if m:
        line = m.group(1) + "<timing>"
    line = NODE_NAME.sub("#block<N>", line)
    for rx, repl in extra:
        line = rx.sub(repl, line)
    return line


# ===================================================================================================================
# driving one monitor process

class Monitor:
    def __init__(self, argv, cwd):
        env = dict(os.environ, LC_ALL="C", LANG="C")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.out, self.err = bytearray(), bytearray()
        self.eof = False
        self.prompts = []
        self.used = 0
        self.killed = False
        self._scan = 0
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._read, args=(s, e), daemon=True)
                        for s, e in ((self.proc.stdout, False), (self.proc.stderr, True))]
        for t in self.threads:
            t.start()

    def _read(self, stream, is_err):
        fd = stream.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    if not is_err:
                        self.eof = True
                    self.cond.notify_all()
                    return
                if is_err:
                    self.err += data
                else:
                    self.out += data
                    while True:
                        j = self.out.find(PROMPT, self._scan)
                        if j < 0:
                            break
                        if j == 0 or self.out[j - 1] == 0x0A:
                            self.prompts.append(j)
                        self._scan = j + 1
                    self._scan = max(self._scan, len(self.out) - len(PROMPT) + 1)
                self.cond.notify_all()

    def wait_prompts(self, count, timeout):
        """True once `count` prompts were seen; False at end of output; FuzzError on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.prompts) < count:
                if self.eof:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no prompt within %.0f s" % timeout)
                self.cond.wait(left)
            return True

    def send(self, line):
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def command(self, line, timeout=CMD_TIMEOUT):
        """(raw output of one command, still alive)."""
        k = self.used
        start = self.prompts[k]
        if not self.send(line):
            self.wait_eof(EXIT_TIMEOUT)
            return bytes(self.out[start:]), False
        if self.wait_prompts(k + 2, timeout):
            self.used = k + 1
            return bytes(self.out[start:self.prompts[k + 1]]), True
        return bytes(self.out[start:]), False

    def wait_eof(self, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def finish(self, timeout=EXIT_TIMEOUT):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        for t in self.threads:
            t.join(5)
        return None if self.killed else rc

    def kill(self):
        if self.proc.poll() is not None:
            return
        self.killed = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=5)
                return
            except subprocess.TimeoutExpired:
                pass


def parse_drive(drive_args):
    args = shlex.split(drive_args, comments=True)
    for i, a in enumerate(args):
        if a == "-drive":
            opts = dict(kv.split("=", 1) for kv in args[i + 1].split(",") if "=" in kv)
            return args, opts.get("file"), opts.get("format")
    raise FuzzError("no -drive in drive args")


def settle(mon):
    """'#! settle' (fuzzer only; written as '#! sleep 1' in emitted scenarios): poll until no job is active, or until
    `info block-jobs` has shown the same text on 5 polls in a row (a rate-limited job asleep for minutes, a paused or a
    ready job).  A fixed sleep was not enough on a loaded machine: a stream with one chunk to copy sometimes took
    longer than half a second to end.  Returns (alive, note or None)."""
    deadline = time.monotonic() + WAIT_CAP
    last, same = None, 0
    while True:
        seg, alive = mon.command("info block-jobs")
        if not alive:
            return False, None
        lines = render(seg.decode(errors="replace"))[1:]
        if "No active jobs" in lines:
            return True, None
        same = same + 1 if lines == last else 0
        last = lines
        if same >= 4:
            return True, None
        if time.monotonic() > deadline:
            return True, "[fuzz: gave up settling after %.0f s: %s]" % (WAIT_CAP, " | ".join(mask(l, "", []) for l in lines))
        time.sleep(POLL)


def poll_jobs(mon, ready_dev):
    """'#! wait': until 'No active jobs'.  '#! wait-ready DEV': until DEV's job shows X == Y on 5 polls in a row (10
    when Y is 0), or until it is gone (a mirror that failed at once).  Returns (alive, note or None)."""
    deadline = time.monotonic() + WAIT_CAP
    stable = 0
    while True:
        seg, alive = mon.command("info block-jobs")
        if not alive:
            return False, None
        lines = render(seg.decode(errors="replace"))[1:]
        if "No active jobs" in lines:
            return True, None
        if ready_dev:
            job = None
            for l in lines:
                m = JOB_LINE.match(l)
                if m and (m.group("sdev") or m.group("dev")) == ready_dev:
                    job = m
            if job is None:
                return True, None
            x, y = int(job.group("x")), int(job.group("y"))
            stable = stable + 1 if x == y else 0
            if stable >= (5 if y > 0 else 10):
                return True, None
        if time.monotonic() > deadline:
            return True, "[fuzz: gave up waiting after %.0f s: %s]" % (WAIT_CAP, " | ".join(mask(l, "", []) for l in lines))
        time.sleep(POLL)


def run_monitor(argv, case, tmp, extra_masks):
    """Play the script; returns (transcript text, device top file, top format)."""
    args, top, fmt = parse_drive(case.drive_args)
    mon = Monitor(argv + args, tmp)
    out = []
    final_top, final_fmt = None, None
    try:
        alive = mon.wait_prompts(1, CMD_TIMEOUT)
        if alive:
            out += render(mon.out[:mon.prompts[0]].decode(errors="replace"))[1:]      # drop the banner
        for line in case.script:
            if not alive:
                break
            s = line.strip()
            if s.startswith("#!"):
                words = s[2:].split()
                out.append(s)
                if words[0] == "wait":
                    alive, note = poll_jobs(mon, None)
                elif words[0] == "wait-ready":
                    alive, note = poll_jobs(mon, words[1])
                elif words[0] == "settle":
                    time.sleep(0.3)
                    alive, note = settle(mon)
                elif words[0] == "sleep":
                    time.sleep(float(words[1]))
                    note = None
                else:
                    note = None
                if note:
                    out.append(note)
                continue
            if s.split()[:1] == ["quit"]:
                seg, alive = mon.command("info block")
                rendered = render(seg.decode(errors="replace"))
                out += rendered
                final_top, final_fmt = parse_info_block(rendered[1:])
                if not alive:
                    break
                mon.send(line)
                if not mon.wait_eof(EXIT_TIMEOUT):
                    out.append("[fuzz: no exit within %.0f s of quit]" % EXIT_TIMEOUT)
                    mon.kill()
                out += render(bytes(mon.out[mon.prompts[mon.used]:]).decode(errors="replace"))
                alive = False
                break
            seg, alive = mon.command(line)
            out += render(seg.decode(errors="replace"))
        if not mon.prompts:
            out += render(mon.out.decode(errors="replace"))
    except TimeoutError as e:
        out += render(bytes(mon.out[mon.prompts[mon.used] if mon.prompts else 0:]).decode(errors="replace"))
        out.append("[fuzz: %s; killed]" % e)
        mon.kill()
    rc = mon.finish()
    lines = [mask(l, tmp, extra_masks) for l in out]
    lines.append("[exit status %s]" % ("killed" if rc is None else rc))
    err = mon.err.decode(errors="replace").splitlines()
    if err:
        lines.append("[stderr]")
        for l in err:
            head, sep, rest = l.partition(": ")
            if sep and head in ("qemu-system-x86_64", "livemon", os.path.basename(argv[0])):
                l = "PROG: " + rest
            lines.append(mask(l, tmp, extra_masks))
    if final_top is None:
        final_top, final_fmt = top, fmt
    return "\n".join(lines) + "\n", final_top, final_fmt


def parse_info_block(lines):
    rx = re.compile(r"^%s(?: \([^)]*\))?: (?P<file>.*) \((?P<fmt>[^()]*)\)$" % DEVICE)
    for l in lines:
        m = rx.match(l)
        if m:
            return m.group("file"), m.group("fmt")
    return None, None


# ===================================================================================================================
# inspecting a dir after a run

def tool(argv, cwd, timeout=120):
    try:
        p = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out"
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def list_files(tmp):
    """{relative path: ('file', sha256) | ('fifo',) | ('dir',) | ('other',)} of everything under tmp."""
    res = {}
    for root, dirs, files in os.walk(tmp):
        for n in dirs:
            res[os.path.relpath(os.path.join(root, n), tmp)] = ("dir",)
        for n in files:
            p = os.path.join(root, n)
            rp = os.path.relpath(p, tmp)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h.update(b)
                res[rp] = ("file", h.hexdigest())
            elif stat.S_ISFIFO(st.st_mode):
                res[rp] = ("fifo",)
            else:
                res[rp] = ("other",)
    return res


def image_info(path, tmp):
    """qemu-img info of one image (its backing not opened), or None when it is no image qemu-img can open."""
    rc, out, err = tool(["qemu-img", "info", "-U", "--output=json", path], tmp)
    if rc != 0:
        return None
    return json.loads(out)


def relpath(p, tmp):
    full = os.path.normpath(os.path.join(tmp, p))
    for t in (tmp, os.path.realpath(tmp)):
        if full == t or full.startswith(t + "/"):
            return os.path.relpath(full, t)
    return full


def walk_chain(top, fmt, tmp):
    """The chain from `top` resolved the way qemu-img resolves it (a relative backing string from the image's own
    directory), each entry normalised like the conformance harness's chain.json.  An entry whose backing string
    resolves only from the working directory gets 'resolves-from-cwd': True and the chain continues there (a
    deliberate difference may accept it; see deliberate-differences.txt)."""
    chain = []
    seen = set()
    path = top
    while path is not None:
        rp = relpath(path, tmp)
        if rp in seen or len(chain) > 16:
            chain.append({"file": rp, "error": "backing loop"})
            break
        seen.add(rp)
        info = image_info(rp, tmp)
        if info is None:
            chain.append({"file": rp, "error": "cannot open"})
            break
        e = {"file": rp, "format": info.get("format")}
        for k in ("backing-filename", "backing-filename-format", "virtual-size", "cluster-size", "dirty-flag"):
            if k in info:
                e[k] = info[k]
        for k, v in sorted((info.get("format-specific") or {}).get("data", {}).items()):
            e[(info.get("format") or "?") + ":" + k] = v
        chain.append(e)
        b = info.get("backing-filename")
        path = None
        if b and b.startswith("json:"):
            # QEMU 7.2 writes a json: pseudo-filename (file names relative to its working directory) where it shows
            # one; livemon writes a path to the same image file instead (backing-resolves): follow the json's own
            # file, then that image's header, as a reopened chain would
            try:
                opts = json.loads(b[len("json:"):])
                b = (opts.get("file") or {}).get("filename") if isinstance(opts.get("file"), dict) else opts.get("file")
            except ValueError:
                b = None
            if b and os.path.exists(os.path.join(tmp, b)):
                e["resolves-from-cwd"] = True
                path = b
            else:
                e["backing-missing"] = True
        elif b:
            if os.path.isabs(b):
                cand = b
            else:
                cand = os.path.join(os.path.dirname(rp), b)
            if os.path.exists(os.path.join(tmp, cand)):
                path = cand
            elif os.path.exists(os.path.join(tmp, b)):
                e["resolves-from-cwd"] = True
                path = b
            else:
                e["backing-missing"] = True
        e["backing"] = relpath(path, tmp) if path else None
    return chain


def content_digest(chain, tmp, scratch):
    """sha256 of the guest-visible content of a walked chain (qemu-img convert with the chain spelt out in
    --image-opts, so a backing string that resolves only from the cwd still reads)."""
    if not chain or any("error" in e or e.get("backing-missing") for e in chain):
        return "unreadable"
    opts, prefix = [], ""
    for e in chain:
        opts.append("%sdriver=%s" % (prefix, e["format"]))
        opts.append("%sfile.filename=%s" % (prefix, e["file"].replace(",", ",,")))
        prefix += "backing."
    out = os.path.join(scratch, "content.raw")
    rc, _, err = tool(["qemu-img", "convert", "-U", "--image-opts", ",".join(opts), "-O", "raw", out], tmp)
    if rc != 0:
        return "error: " + (err.strip().splitlines() or ["?"])[-1].replace(tmp, "<tmp>")
    h = hashlib.sha256()
    with open(out, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    os.unlink(out)
    return h.hexdigest()


def check(path, tmp):
    # The image alone (backing: null): a backing loop would make qemu-img check hang.
    spec = "json:" + json.dumps({"driver": "qcow2", "file": {"driver": "file", "filename": path}, "backing": None})
    rc, out, err = tool(["qemu-img", "check", "-U", "--output=json", spec], tmp, timeout=60)
    try:
        r = json.loads(out)
    except ValueError:
        return "check failed: " + err.strip().replace(tmp, "<tmp>")
    if r.get("corruptions", 0) or r.get("check-errors", 0):
        return "%d corruptions, %d check errors" % (r.get("corruptions", 0), r.get("check-errors", 0))
    return "leaks %d" % r["leaks"] if r.get("leaks") else "ok"


class Outcome:
    """What one implementation left behind."""

    def __init__(self):
        self.transcript = ""
        self.top = None
        self.chain = []
        self.digest = ""
        self.files = {}          # path -> ('file', sha) ...
        self.images = {}         # path -> {'chain': ..., 'digest': ..., 'check': ...} for images worth comparing
        self.dir = None


def inspect(tmp, top, fmt, scratch, paths_of_interest):
    o = Outcome()
    o.top = top
    o.chain = walk_chain(top, fmt, tmp) if top else []
    o.digest = content_digest(o.chain, tmp, scratch)
    o.files = list_files(tmp)
    for p in sorted(paths_of_interest | {p for p, v in o.files.items() if v[0] == "file"}):
        if o.files.get(p, ("missing",))[0] != "file":
            continue
        info = image_info(p, tmp)
        if info is None or info.get("format") not in ("qcow2", "raw") or p.endswith(".txt"):
            continue
        ch = walk_chain(p, info.get("format"), tmp)
        o.images[p] = {"chain": ch, "digest": content_digest(ch, tmp, scratch),
                       "check": check(p, tmp) if info.get("format") == "qcow2" else "n/a"}
    return o


# ===================================================================================================================
# deliberate differences

class Deliberate:
    """fuzz/deliberate-differences.txt: INI sections, one per difference.  kind = mask (regex -> replace on both
    transcripts), drop (livemon transcript lines matching regex are dropped), rule (implemented here by name), or
    not-generated (documentation: the generator never produces that input)."""

    def __init__(self, path=DELIBERATE_FILE):
        self.entries = {}
        self.masks = []
        self.drops = []
        self.rules = set()
        if not os.path.exists(path):
            return
        cp = configparser.ConfigParser(interpolation=None)
        cp.read(path)
        for name in cp.sections():
            s = cp[name]
            self.entries[name] = s.get("reason", "")
            kind = s.get("kind", "")
            if kind == "mask":
                self.masks.append((re.compile(s["pattern"]), s.get("replace", "")))
            elif kind == "drop":
                self.drops.append(re.compile(s["pattern"]))
            elif kind == "rule":
                self.rules.add(s.get("rule", name))


def normalise_chain(chain, deliberate, used, reference=True):
    """Chain entries as compared.  With rule backing-resolves: a backing string that resolves only from the working
    directory compares equal to one that resolves from the image's directory to the same file (both are replaced by
    the file they lead to) when the reference (QEMU 7.2) wrote it; livemon's string must resolve from the image's
    directory, so on livemon's side the entry keeps 'resolves-from-cwd' and differs."""
    res = []
    for e in chain:
        e = dict(e)
        if "backing-resolves" in deliberate.rules and e.get("backing"):
            if reference and e.pop("resolves-from-cwd", False):
                used.add("backing-resolves")
            e["backing-filename"] = "<resolves to %s>" % e["backing"]
        res.append(e)
    return res


def chain_text(chain):
    return "[\n" + ",\n".join("  " + json.dumps(e, sort_keys=True) for e in chain) + "\n]\n"


# ===================================================================================================================
# one seed

class SeedResult:
    def __init__(self, seed):
        self.seed = seed
        self.reasons = []        # short reasons: divergence
        self.notes = []          # deliberate differences used, warnings
        self.diffs = []          # (title, unified diff)
        self.case = None
        self.a = self.b = None
        self.seconds = 0.0
        self.error = None

    @property
    def ok(self):
        return not self.reasons and not self.error


def udiff(a, b, name, la, lb):
    return "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), "%s/%s" % (la, name),
                                        "%s/%s" % (lb, name)))


def run_seed(seed, impls, opts, keep_root=None, keep_always=False):
    """impls: [(label, argv)] of two implementations; the first is the reference."""
    res = SeedResult(seed)
    t0 = time.monotonic()
    case = generate(seed, fifo=opts.fifo, avoid=opts.avoid)
    res.case = case
    deliberate = opts.deliberate
    root = tempfile.mkdtemp(prefix="difffuzz-%d-" % seed)
    try:
        src = os.path.join(root, "setup")
        os.mkdir(src)
        p = subprocess.run(["sh", "-e", "-c", "\n".join(case.setup)], cwd=src, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        if p.returncode != 0:
            raise FuzzError("setup failed: " + p.stdout.decode(errors="replace").strip()[-300:])
        before = list_files(src)
        scratch = os.path.join(root, "scratch")
        os.mkdir(scratch)
        interest = set(case.targets) | {p for p, v in before.items() if v[0] == "file"}
        outs = []
        for label, argv in impls:
            tmp = os.path.join(root, label)
            shutil.copytree(src, tmp, symlinks=True)
            transcript, top, fmt = run_monitor(argv, case, tmp, deliberate.masks)
            if label != impls[0][0] and deliberate.drops:
                transcript = "".join(l for l in transcript.splitlines(True)
                                     if not any(rx.search(l) for rx in deliberate.drops))
            o = inspect(tmp, top, fmt, scratch, interest)
            o.transcript = transcript
            o.dir = tmp
            outs.append(o)
        a, b = outs
        res.a, res.b = a, b
        la, lb = impls[0][0], impls[1][0]
        compare(res, case, before, a, b, la, lb, deliberate)
    except FuzzError as e:
        res.error = str(e)
    finally:
        res.seconds = time.monotonic() - t0
        if keep_root and (keep_always or not res.ok):
            save(res, root, os.path.join(keep_root, "seed-%d" % seed))
        shutil.rmtree(root, ignore_errors=True)
    return res


def committed_into_later(case, target):
    """Whether the script commits (HMP `commit`, which writes the backing files, the raw `target` among them) besides
    naming `target`: then the file livemon kept may legitimately differ from its first bytes at the end (fuzz seeds
    8646, 8767: a commit after or before the refused command)."""
    return any(line.split()[:1] == ["commit"] for line in case.script)


def raw_backing_qemu_overwrote(case, a, b):
    """The raw image of the initial chain that QEMU 7.2 formatted over while livemon refused it with a lock error, or
    None (docs/differences.md): a raw backing file QEMU did not lock, as a snapshot target (conformance 32), or the
    active raw disk itself as a mirror/backup target, which QEMU truncates before it reports its lock error
    (conformance 44)."""
    raw = set()
    cwd = ""
    for line in case.setup:
        if line == "cd img":
            cwd = "img/"
        elif line == "cd ..":
            cwd = ""
        elif line.startswith("qemu-img create -q -f raw ") and "spare" not in line:
            raw.add(cwd + shlex.split(line)[5])
    for t in sorted(raw):
        formatted = "Formatting '%s', fmt=" % t
        refused = 'Error: Failed to get "write" lock\nIs another process using the image [%s]?' % t
        if formatted in a.transcript and formatted in b.transcript and refused in b.transcript \
                and a.transcript.count(refused) < b.transcript.count(refused):
            return t
    return None


QEMU_ABORT = re.compile(r"^\[exit status -6\]\n\[stderr\]\n(?:.*\n)*?PROG: (.*Assertion .* failed\.)$", re.M)


def qemu_crash(a):
    """QEMU's assertion message when the reference run aborted (SIGABRT from a failed assertion), else None."""
    m = QEMU_ABORT.search(a.transcript)
    return m.group(1) if m else None


def compare(res, case, before, a, b, la, lb, deliberate):
    used = set()
    crash = qemu_crash(a) if "qemu-crashes" in deliberate.rules else None
    if crash:
        # QEMU died of a failed assertion: nothing of its run compares from the command it died in on. Compared: the
        # transcripts up to that command, and that livemon kept every file the script never named.
        res.notes.append("deliberate: qemu-crashes (%s)" % crash)
        qa = a.transcript.split("[exit status")[0].splitlines()
        qb = b.transcript.splitlines()[:len(qa)]
        if qa != qb:
            res.reasons.append("transcript before QEMU's crash: " + first_difference("\n".join(qa), "\n".join(qb)))
        initial_chain = {e["file"] for e in walk_chain_from_setup(case)}
        for p, v in sorted(before.items()):
            if p in case.targets or p in initial_chain or v[0] == "dir":
                continue
            if b.files.get(p, ("missing",)) != v:
                res.reasons.append("DATA: %s changed %s, a file the script never named" % (lb, p))
        for p, ib in sorted(b.images.items()):
            if ib["check"] not in ("ok", "n/a") and not ib["check"].startswith("leaks"):
                res.reasons.append("image %s: qemu-img check after %s: %s" % (p, lb, ib["check"]))
        return
    target = raw_backing_qemu_overwrote(case, a, b) if "qemu-overwrites-raw-backing" in deliberate.rules else None
    if target:
        # QEMU's run destroyed its own chain from here on (a backing loop): nothing after it compares. What is
        # left to check is that livemon kept every file, the raw backing file above all.
        res.notes.append("deliberate: qemu-overwrites-raw-backing (%s)" % target)
        for p, v in sorted(before.items()):
            if v[0] == "dir" or p in case.targets and p != target:
                continue
            if p in {e["file"] for e in walk_chain_from_setup(case)} and (p != target or p == case_top(case)):
                continue  # chain images change by guest writes and jobs (the active disk too, when it is the target)
            if p == target and committed_into_later(case, target):
                # a commit writes the backing file livemon kept (fuzz seeds 8646, 8767): it must still be raw
                chain = b.images.get(p, {}).get("chain") or [{}]
                if chain[0].get("format") != "raw":
                    res.reasons.append("DATA: %s left %s as %s, not the raw image it was" % (lb, p,
                                                                                        chain[0].get("format")))
                continue
            if b.files.get(p, ("missing",)) != v:
                res.reasons.append("DATA: %s changed %s, which it refused to overwrite or never named" % (lb, p))
        return
    # 1. transcript
    if a.transcript != b.transcript:
        res.reasons.append("transcript: " + first_difference(a.transcript, b.transcript))
        res.diffs.append(("transcript", udiff(a.transcript, b.transcript, "transcript.txt", la, lb)))
    # 2. the device's final chain and content
    ca, cb = normalise_chain(a.chain, deliberate, used), normalise_chain(b.chain, deliberate, used, lb == "qemu2")
    if chain_text(ca) != chain_text(cb):
        res.reasons.append("chain: " + first_difference(chain_text(ca), chain_text(cb)))
        res.diffs.append(("chain", udiff(chain_text(ca), chain_text(cb), "chain.json", la, lb)))
    if a.digest != b.digest:
        res.reasons.append("guest-visible content of the device differs")
        res.diffs.append(("content", "%s: %s\n%s: %s\n" % (la, a.digest, lb, b.digest)))
    # 3. never destroy data: every file the script did not name as a target keeps its bytes, unless it is an image of
    # the chain (which jobs and guest writes legitimately change; those are compared across the two runs below)
    chain_files = set()
    for o in (a, b):
        chain_files |= {e["file"] for e in o.chain}
    initial_chain = {e["file"] for e in walk_chain_from_setup(case)}
    for p, v in sorted(before.items()):
        if p in case.targets or p in initial_chain or v[0] == "dir":
            continue
        for label, o in ((la, a), (lb, b)):
            now = o.files.get(p, ("missing",))
            if now != v:
                what = "deleted" if now[0] == "missing" else "modified"
                res.reasons.append("DATA: %s %s a file the script never named: %s" % (label, what, p))
    # 4. images compared across runs: targets, the chain, and whatever either run created
    created_a = set(a.files) - set(before)
    created_b = set(b.files) - set(before)
    for p in sorted(created_a ^ created_b):
        res.reasons.append("file %s exists only after %s" % (p, la if p in created_a else lb))
    for p in sorted(set(a.images) | set(b.images)):
        ia, ib = a.images.get(p), b.images.get(p)
        if ia is None or ib is None:
            if p in before or (p in a.files) == (p in b.files):
                res.reasons.append("%s: an image after %s only" % (p, la if ib is None else lb))
            continue
        ta = chain_text(normalise_chain(ia["chain"], deliberate, used))
        tb = chain_text(normalise_chain(ib["chain"], deliberate, used, lb == "qemu2"))
        if ta != tb:
            res.reasons.append("image %s: chain differs: %s" % (p, first_difference(ta, tb)))
            res.diffs.append(("image " + p, udiff(ta, tb, p + ".chain.json", la, lb)))
        if ia["digest"] != ib["digest"] and p not in case.unstable:
            res.reasons.append("image %s: content differs" % p)
        if ib["check"] not in ("ok",) and not ib["check"].startswith("leaks") and ia["check"] != ib["check"]:
            res.reasons.append("image %s: qemu-img check after %s: %s" % (p, lb, ib["check"]))
        elif ib["check"].startswith("leaks") and ia["check"] == "ok":
            res.notes.append("%s: %s after %s" % (p, ib["check"], lb))
    res.notes += ["deliberate: %s" % u for u in sorted(used)]


def case_top(case):
    """The drive's image file, as the drive argument names it."""
    m = re.search(r"file=([^,\s]+)", case.drive_args)
    return m.group(1) if m else None


def walk_chain_from_setup(case):
    """Files of the initial chain, from the generated setup (without running anything)."""
    files = []
    cwd = ""
    for line in case.setup:
        if line == "cd img":
            cwd = "img/"
        elif line == "cd ..":
            cwd = ""
        elif line.startswith("qemu-img create") and "spare" not in line:
            words = shlex.split(line)
            name = [w for w in words[2:] if not w.startswith("-") and not w.isdigit() and "=" not in w
                    and w not in ("qcow2", "raw")]
            if name:
                files.append({"file": cwd + name[-1]})
    return files


def first_difference(x, y):
    xl, yl = x.splitlines(), y.splitlines()
    for i in range(max(len(xl), len(yl))):
        p = xl[i] if i < len(xl) else "<end>"
        q = yl[i] if i < len(yl) else "<end>"
        if p != q:
            # show where the lines part, not only their (often equal) beginnings
            col = next((k for k in range(min(len(p), len(q))) if p[k] != q[k]), min(len(p), len(q)))
            lo = max(0, col - 40)
            cut = lambda t: ("..." if lo else "") + t[lo:lo + 110] + ("..." if len(t) > lo + 110 else "")
            return "%r vs %r" % (cut(p), cut(q))
    return "?"


def save(res, root, dest):
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    case = res.case
    with open(os.path.join(dest, "setup.sh"), "w") as f:
        f.write("\n".join(case.setup) + "\n")
    with open(os.path.join(dest, "drive.args"), "w") as f:
        f.write(case.drive_args + "\n")
    with open(os.path.join(dest, "script.hmp"), "w") as f:
        f.write(scenario_script(case))
    with open(os.path.join(dest, "report.txt"), "w") as f:
        f.write(report_text(res))
    for label in ("a", "b"):
        o = getattr(res, label)
        if o is not None and o.dir and os.path.isdir(o.dir):
            shutil.copytree(o.dir, os.path.join(dest, os.path.basename(o.dir)), symlinks=True)
            with open(os.path.join(dest, os.path.basename(o.dir) + "-transcript.txt"), "w") as f:
                f.write(o.transcript)


def report_text(res):
    lines = ["seed %d: %s" % (res.seed, "PASS" if res.ok else "DIVERGE")]
    if res.error:
        lines.append("error: " + res.error)
    lines += ["  - " + r for r in res.reasons]
    lines += ["  note: " + n for n in res.notes]
    for title, d in res.diffs:
        lines.append("--- %s" % title)
        lines.append(d.rstrip("\n"))
    return "\n".join(lines) + "\n"


# ===================================================================================================================
# main

def parse_seeds(spec):
    seeds = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds += range(int(lo), int(hi) + 1)
        elif part:
            seeds.append(int(part))
    return seeds


def warm_up(argv):
    """Start the implementation once so that ./livemon's own build and its class-data archive happen before any
    parallel runs."""
    try:
        subprocess.run(argv, input=b"quit\n", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
                       cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FuzzError("cannot start %s: %s" % (argv[0], e))


def main():
    global CMD_TIMEOUT
    ap = argparse.ArgumentParser(prog="difffuzz.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0-19", help="seed list: 0-199 or 1,5,9-12 (default 0-19)")
    ap.add_argument("--replay", type=int, metavar="SEED", help="run one seed and print setup, script, transcripts "
                    "and diffs")
    ap.add_argument("--show", type=int, metavar="SEED", help="print the generated case only; run nothing")
    ap.add_argument("--emit-scenario", metavar="DIR", help="with --replay/--show: write DIR/setup.sh, drive.args, "
                    "script.hmp (a conformance scenario)")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in parallel (default 1)")
    ap.add_argument("--keep-failures", metavar="DIR", help="copy each diverging seed's files and dirs to DIR/seed-N")
    ap.add_argument("--budget-seconds", type=float, default=None, help="start no new seed after this many seconds")
    ap.add_argument("--livemon", default=os.path.join(PROJECT, "livemon"), metavar="CMD",
                    help="livemon command (default: the project's ./livemon)")
    ap.add_argument("--qemu", default="qemu-system-x86_64", metavar="BIN")
    ap.add_argument("--self-check", action="store_true", help="run QEMU against QEMU (finds timing-dependent output)")
    ap.add_argument("--fifo", action="store_true", help="also use a FIFO as a target (livemon 0.1 hangs on it)")
    ap.add_argument("--avoid", default="", metavar="KINDS",
                    help="comma list of known divergence kinds the generator steers around, or 'known' for all: "
                    + ", ".join(sorted(AVOIDABLE)) + " (part of a seed's identity)")
    ap.add_argument("--timeout", type=float, default=CMD_TIMEOUT, help="seconds to wait for one prompt")
    ap.add_argument("-v", "--verbose", action="store_true", help="print diffs of diverging seeds")
    args = ap.parse_args()
    CMD_TIMEOUT = args.timeout
    args.deliberate = Deliberate()
    avoid = {a for a in args.avoid.split(",") if a}
    if "known" in avoid:
        avoid = set(AVOIDABLE)
    bad = avoid - set(AVOIDABLE)
    if bad:
        ap.error("unknown --avoid kind(s): %s (known: %s)" % (", ".join(sorted(bad)), ", ".join(sorted(AVOIDABLE))))
    args.avoid = frozenset(avoid)

    if args.show is not None:
        case = generate(args.show, fifo=args.fifo, avoid=args.avoid)
        sys.stdout.write(case.text())
        if args.emit_scenario:
            emit_scenario(case, args.emit_scenario)
        return 0

    qemu = [args.qemu] + FIXED_ARGS + ["-monitor", "stdio"]
    if args.self_check:
        impls = [("qemu", qemu), ("qemu2", qemu)]
    else:
        lm = shlex.split(args.livemon)
        if not lm or not shutil.which(lm[0]):
            print("difffuzz: error: livemon command not found: %s" % args.livemon)
            return 2
        impls = [("qemu", qemu), ("livemon", [os.path.abspath(lm[0]) if "/" in lm[0] else lm[0]] + lm[1:]
                                  + FIXED_ARGS)]
    for t in ("qemu-img", "qemu-io", args.qemu):
        if not shutil.which(t):
            print("difffuzz: error: %s not found" % t)
            return 2
    try:
        warm_up(impls[1][1])
    except FuzzError as e:
        print("difffuzz: error: %s" % e)
        return 2

    if args.replay is not None:
        res = run_seed(args.replay, impls, args, args.keep_failures, keep_always=True)
        case = res.case
        print("=== seed %d%s" % (args.replay, " (--avoid %s)" % ",".join(sorted(args.avoid)) if args.avoid else ""))
        sys.stdout.write(case.text())
        for label, o in ((impls[0][0], res.a), (impls[1][0], res.b)):
            if o is not None:
                print("=== %s transcript" % label)
                sys.stdout.write(o.transcript)
                print("=== %s final chain (digest %s)" % (label, o.digest))
                sys.stdout.write(chain_text(o.chain))
        print("=== result")
        sys.stdout.write(report_text(res))
        if args.emit_scenario:
            emit_scenario(case, args.emit_scenario)
        return 0 if res.ok else 1

    seeds = parse_seeds(args.seeds)
    t0 = time.monotonic()
    passed = failed = 0
    results = {}
    next_print = 0
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs))
    pending = {}
    it = iter(seeds)
    stopped = False

    def submit():
        nonlocal stopped
        if stopped:
            return False
        if args.budget_seconds is not None and time.monotonic() - t0 > args.budget_seconds:
            stopped = True
            return False
        s = next(it, None)
        if s is None:
            stopped = True
            return False
        pending[pool.submit(run_seed, s, impls, args, args.keep_failures)] = s
        return True

    for _ in range(max(1, args.jobs)):
        submit()
    order = []
    while pending:
        done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        for fut in done:
            s = pending.pop(fut)
            try:
                res = fut.result()
            except Exception as e:              # a bug in the fuzzer: report it as such, keep going
                res = SeedResult(s)
                res.error = "fuzzer bug: %r" % e
            results[s] = res
            order.append(s)
            submit()
        # print in seed order as far as complete
        for s in sorted(results):
            if s in results and results[s] is not None:
                res = results.pop(s)
                if res.ok:
                    passed += 1
                    note = (" (" + "; ".join(res.notes) + ")") if res.notes else ""
                    print("PASS %d (%.1fs)%s" % (s, res.seconds, note), flush=True)
                else:
                    failed += 1
                    why = res.error or res.reasons[0]
                    more = " (+%d more)" % (len(res.reasons) - 1) if len(res.reasons) > 1 else ""
                    print("DIVERGE %d (%.1fs): %s%s" % (s, res.seconds, why, more), flush=True)
                    if args.verbose:
                        sys.stdout.write(report_text(res))
    pool.shutdown()
    total = time.monotonic() - t0
    print("%d passed, %d failed (%d seeds in %.0f s, %.1f s per seed)"
          % (passed, failed, passed + failed, total, total / max(1, passed + failed)), flush=True)
    return 0 if failed == 0 else 1


def emit_scenario(case, dest):
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "setup.sh"), "w") as f:
        f.write("# generated by fuzz/difffuzz.py --show %d\n" % case.seed + "\n".join(case.setup) + "\n")
    with open(os.path.join(dest, "drive.args"), "w") as f:
        f.write(case.drive_args + "\n")
    with open(os.path.join(dest, "script.hmp"), "w") as f:
        f.write("#! guest-writes\n" + scenario_script(case))


def scenario_script(case):
    """The script for ../shared/conformance/run, which knows no '#! settle'."""
    return "".join(("#! sleep 1" if l == "#! settle" else l) + "\n" for l in case.script)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("difffuzz: interrupted", file=sys.stderr)
        sys.exit(130)
