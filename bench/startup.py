#!/usr/bin/env python3
"""Start-up benchmark (issue 3), run by bench/startup.sh: time from launch to the first "(qemu) " prompt on a pipe
(stdin not a terminal) for ./livemon and for qemu-system-x86_64 -M none, runs interleaved, same drive.

Usage: startup.py ROOT WORKDIR RUNS"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hmp  # noqa: E402


def time_to_prompt(argv, work, env=None):
    m = hmp.Monitor(argv, cwd=work, env=env)
    m.wait_prompt(120)
    t = time.monotonic() - m.t_launch
    m.quit()
    if m.err.strip():
        raise SystemExit("%s wrote to stderr: %r" % (argv[0], m.err[-500:]))
    return t


def main():
    root, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "base.img", "1G"], cwd=work, check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.img", "-F", "qcow2", "top.img", "1G"],
                   cwd=work, check=True)
    env = dict(os.environ, LIVEMON_LOG=os.path.join(work, "livemon.log"))
    jar = os.path.join(root, "target", "livemon.jar")
    drive = ["-M", "none", "-nodefaults", "-display", "none", "-drive", "file=top.img,if=none,id=virtio0"]
    cases = [
        ("./livemon (app CDS archive)", [os.path.join(root, "livemon")] + drive),
        ("java -jar, JDK CDS only", ["java", "-XX:+UseSerialGC", "-jar", jar] + drive),
        ("java -jar, -Xshare:off", ["java", "-Xshare:off", "-XX:+UseSerialGC", "-jar", jar] + drive),
        ("qemu-system-x86_64 -M none", hmp.qemu_argv("top.img")),
    ]
    # untimed warm-up: makes ./livemon's CDS archive on a fresh checkout and warms the page cache
    for _, argv in cases:
        time_to_prompt(argv, work, env)
        time_to_prompt(argv, work, env)
    times = {name: [] for name, _ in cases}
    for r in range(runs):
        for name, argv in cases:
            times[name].append(time_to_prompt(argv, work, env))
    print()
    print("time from launch to the first '(qemu) ' prompt, stdin a pipe, one qcow2 drive with a backing file; "
          "%d interleaved runs each" % runs)
    print()
    print("| %-30s | %9s | %9s | %9s |" % ("command", "median s", "min s", "max s"))
    print("|%s|%s|%s|%s|" % ("-" * 32, "-" * 11, "-" * 11, "-" * 11))
    for name, _ in cases:
        v = times[name]
        print("| %-30s | %9.3f | %9.3f | %9.3f |" % (name, statistics.median(v), min(v), max(v)))
    lm = statistics.median(times[cases[0][0]])
    q = statistics.median(times[cases[-1][0]])
    print()
    print("./livemon median %.3f s (target <= 0.400 s): %s; ratio livemon/QEMU %.2f"
          % (lm, "met" if lm <= 0.4 else "MISSED", lm / q))


if __name__ == "__main__":
    main()
