#!/usr/bin/env python3
"""Stream benchmark (issue 4), run by bench/stream.sh: block_stream of a 1 GiB chain of 5 partially allocated qcow2
layers by livemon and by QEMU 7.2 in the same run, and cp of the same number of bytes.

Usage: stream.py LAUNCHER WORKDIR REPS"""

import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hmp  # noqa: E402

MIB = 1 << 20
SIZE_MIB = 1024
LAYERS = "ABCDE"
FRACTION = 0.20       # of the 1 MiB slots allocated in each layer
SEED = 20240702
POLL = 0.010          # QEMU: info block-jobs poll interval (s)


def run(*argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def make_chain(work):
    rnd = random.Random(SEED)
    slots = []
    for i, layer in enumerate(LAYERS):
        name = "file-%s.img" % layer
        if i == 0:
            run("qemu-img", "create", "-q", "-f", "qcow2", name, "%dM" % SIZE_MIB, cwd=work)
        else:
            run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "file-%s.img" % LAYERS[i - 1], "-F", "qcow2",
                name, "%dM" % SIZE_MIB, cwd=work)
        mine = sorted(rnd.sample(range(SIZE_MIB), int(SIZE_MIB * FRACTION)))
        slots.append(set(mine))
        # merge adjacent slots into runs, one qemu-io write per run
        cmds = []
        start = prev = None
        for s in mine + [None]:
            if start is not None and (s is None or s != prev + 1):
                cmds += ["-c", "write -P %d %dM %dM" % (0x11 * (i + 1), start, prev - start + 1)]
                start = None
            if s is not None:
                if start is None:
                    start = s
                prev = s
        run("qemu-io", "-f", "qcow2", *cmds, name, cwd=work)
    below = set().union(*slots[:-1])
    copied = len(below - slots[-1]) * MIB
    return copied


def stream_livemon(launcher, work, img):
    m = hmp.Monitor(hmp.livemon_argv(launcher, img), cwd=work,
                    env=dict(os.environ, LIVEMON_LOG=os.path.join(work, "livemon.log")))
    m.wait_prompt(120)
    t0 = time.monotonic()
    out1, _ = m.cmd("block_stream virtio0")
    out2, _ = m.cmd("wait_jobs 600")
    t1 = time.monotonic()
    out3, _ = m.cmd("info block-jobs")
    m.quit()
    check_output("livemon", out1 + out2, out3)
    return t1 - t0


def stream_qemu(work, img):
    m = hmp.Monitor(hmp.qemu_argv(img), cwd=work)
    m.wait_prompt(120)
    t0 = time.monotonic()
    out1, _ = m.cmd("block_stream virtio0")
    while True:
        out, _ = m.cmd("info block-jobs")
        if "No active jobs" in out:
            break
        time.sleep(POLL)
    t1 = time.monotonic()
    m.quit()
    check_output("qemu", out1, out)
    return t1 - t0


def check_output(who, out, final):
    body = "\n".join(l for l in out.splitlines() if l.strip() and not l.strip().startswith(("block_stream", "wait_jobs")))
    if "rror" in body or "No active jobs" not in final:
        raise SystemExit("%s: unexpected monitor output: %r / %r" % (who, out, final))


def verify(work, img, ref_raw):
    info = run("qemu-img", "info", img, cwd=work).stdout.decode()
    if "backing file:" in info:
        raise SystemExit("%s still has a backing file after the stream:\n%s" % (img, info))
    run("qemu-img", "check", "-q", img, cwd=work)
    r = subprocess.run(["qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw", img, ref_raw], cwd=work)
    if r.returncode != 0:
        raise SystemExit("%s: content differs from the chain before the stream" % img)


def main():
    launcher, work, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("creating the chain ...", file=sys.stderr)
    copied = make_chain(work)
    run("qemu-img", "convert", "-O", "raw", "file-E.img", "ref.raw", cwd=work)
    run("qemu-img", "create", "-q", "-f", "raw", "cp-src.raw", str(copied), cwd=work)
    run("qemu-io", "-f", "raw", "-c", "write -P 0x77 0 %d" % copied, "cp-src.raw", cwd=work)
    run("sync")
    # warm the JVM's class-data archive and the page cache of the launcher once, untimed
    m = hmp.Monitor(hmp.livemon_argv(launcher, "file-E.img"), cwd=work,
                    env=dict(os.environ, LIVEMON_LOG=os.path.join(work, "livemon.log")))
    m.wait_prompt(300)
    m.quit()

    times = {"livemon": [], "qemu": [], "cp": []}
    for r in range(reps):
        for who in ("livemon", "qemu", "cp"):
            if who == "cp":
                dst = os.path.join(work, "cp-dst.raw")
                t0 = time.monotonic()
                run("cp", "cp-src.raw", "cp-dst.raw", cwd=work)
                t = time.monotonic() - t0
                os.unlink(dst)
            else:
                img = "run-%s.img" % who
                run("cp", "--sparse=always", "file-E.img", img, cwd=work)
                run("sync")
                t = stream_livemon(launcher, work, img) if who == "livemon" else stream_qemu(work, img)
                if r == 0:
                    verify(work, img, "ref.raw")
                os.unlink(os.path.join(work, img))
            times[who].append(t)
            print("  rep %d %-8s %.3f s  (%.0f MB/s)" % (r + 1, who, t, copied / t / 1e6), file=sys.stderr)

    med = {k: statistics.median(v) for k, v in times.items()}
    mbps = {k: copied / med[k] / 1e6 for k in med}
    print()
    print("chain: 1 GiB, 5 qcow2 layers (64 KiB clusters), each with %d%% of its 1 MiB slots allocated at random "
          "(seed %d, overlapping); stream into file-E.img copies %d bytes (%.0f MiB)"
          % (FRACTION * 100, SEED, copied, copied / MIB))
    print("median of %d runs each, page cache warm; QEMU polled with info block-jobs every %.0f ms" % (reps, POLL * 1000))
    print()
    print("| %-40s | %8s | %8s |" % ("block_stream virtio0 (whole chain)", "median s", "MB/s"))
    print("|%s|%s|%s|" % ("-" * 42, "-" * 10, "-" * 10))
    for k, label in (("livemon", "livemon (block_stream .. wait_jobs)"),
                     ("qemu", "QEMU 7.2 (block_stream .. No active jobs)"),
                     ("cp", "cp of the same number of bytes")):
        print("| %-40s | %8.3f | %8.0f |" % (label, med[k], mbps[k]))
    print()
    print("livemon / QEMU throughput: %.2f  (target >= 1.50)" % (mbps["livemon"] / mbps["qemu"]))
    print("livemon / cp throughput:   %.2f  (target >= 0.50)" % (mbps["livemon"] / mbps["cp"]))
    print("all runs (s): " + "; ".join("%s %s" % (k, " ".join("%.3f" % x for x in v)) for k, v in times.items()))


if __name__ == "__main__":
    main()
