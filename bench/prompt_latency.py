#!/usr/bin/env python3
"""Prompt-latency benchmark (issue 4), run by bench/prompt-latency.sh: while two unthrottled block_stream jobs run on
two devices (two 1 GiB 5-layer chains), send `info block-jobs` over and over and time each reply (command sent ->
next "(qemu) " prompt). Only samples whose reply shows both jobs still running count. Same for QEMU 7.2.

Usage: prompt_latency.py LAUNCHER WORKDIR SAMPLES"""

import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hmp  # noqa: E402
import stream  # noqa: E402

GAP = 0.002  # pause between samples (s)


def pct(v, p):
    v = sorted(v)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def rounds(who, launcher, work, want, max_rounds=8):
    lat = []
    for r in range(max_rounds):
        imgs = []
        for d in ("d0", "d1"):
            img = "%s/run-%s.img" % (d, who)
            subprocess.run(["cp", "--sparse=always", "%s/file-E.img" % d, img], cwd=work, check=True)
            imgs.append(img)
        subprocess.run(["sync"], check=True)
        if who == "livemon":
            # GC log of the timed livemon process (stop-the-world pauses show up in the latency tail)
            gc = "-Xlog:gc:file=%s" % os.path.join(work, "gc-%d.log" % r)
            m = hmp.Monitor(hmp.livemon_argv(launcher, *imgs), cwd=work,
                            env=dict(os.environ, LIVEMON_LOG=os.path.join(work, "livemon.log"),
                                     JAVA_TOOL_OPTIONS=(os.environ.get("JAVA_TOOL_OPTIONS", "") + " " + gc).strip()))
        else:
            m = hmp.Monitor(hmp.qemu_argv(*imgs), cwd=work)
        m.wait_prompt(120)
        m.cmd("block_stream virtio0")
        m.cmd("block_stream virtio1")
        got = 0
        while True:
            out, dt = m.cmd("info block-jobs")
            if out.count("Streaming device") == 2:
                lat.append(dt)
                got += 1
            elif "No active jobs" in out:
                break
            time.sleep(GAP)
        if who == "livemon":
            m.cmd("wait_jobs 600")
        m.quit()
        for img in imgs:
            os.unlink(os.path.join(work, img))
        print("  %s round %d: %d samples with both jobs running" % (who, r + 1, got), file=sys.stderr)
        if len(lat) >= want:
            break
    return lat


def main():
    launcher, work, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("creating two 1 GiB 5-layer chains ...", file=sys.stderr)
    for d in ("d0", "d1"):
        os.makedirs(os.path.join(work, d))
        stream.make_chain(os.path.join(work, d))
    # warm-up launch (builds the class-data archive on a fresh checkout), untimed
    m = hmp.Monitor(hmp.livemon_argv(launcher, "d0/file-E.img"), cwd=work,
                    env=dict(os.environ, LIVEMON_LOG=os.path.join(work, "livemon.log")))
    m.wait_prompt(300)
    m.quit()
    res = {}
    for who in ("livemon", "qemu"):
        res[who] = rounds(who, launcher, work, want)
    print()
    print("two unthrottled block_stream jobs (two 1 GiB 5-layer chains, as in bench/stream.sh); "
          "'info block-jobs' sent every %.0f ms; latency = command written -> next prompt read" % (GAP * 1000))
    print()
    print("| %-8s | %7s | %8s | %8s | %8s | %8s |" % ("monitor", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms"))
    print("|%s|%s|%s|%s|%s|%s|" % ("-" * 10, "-" * 9, "-" * 10, "-" * 10, "-" * 10, "-" * 10))
    for who, v in res.items():
        if not v:
            print("| %-8s | %7d | %8s | %8s | %8s | %8s |" % (who, 0, "-", "-", "-", "-"))
            continue
        print("| %-8s | %7d | %8.2f | %8.2f | %8.2f | %8.2f |" % (
            who, len(v), pct(v, 50) * 1000, pct(v, 90) * 1000, pct(v, 99) * 1000, max(v) * 1000))
    pauses = []
    for f in sorted(os.listdir(work)):
        if f.startswith("gc-") and f.endswith(".log"):
            with open(os.path.join(work, f)) as fh:
                pauses += [float(x) for x in re.findall(r"Pause.* ([0-9.]+)ms", fh.read())]
    print()
    print("livemon GC (-Xlog:gc, all rounds): %d pauses, total %.1f ms, max %.2f ms"
          % (len(pauses), sum(pauses), max(pauses) if pauses else 0.0))
    if res["livemon"]:
        p99 = pct(res["livemon"], 99) * 1000
        print()
        print("livemon p99: %.2f ms  (target < 10 ms): %s" % (p99, "met" if p99 < 10 else "MISSED"))


if __name__ == "__main__":
    main()
