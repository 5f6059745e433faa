"""Tiny HMP driver for the livemon benchmarks: starts a monitor (livemon or qemu-system-x86_64 -monitor stdio) on
pipes, waits for "(qemu) " prompts and times commands. Standard library only. Not part of the test suite."""

import os
import select
import subprocess
import time

PROMPT = b"(qemu) "


class Monitor:
    def __init__(self, argv, cwd=None, env=None):
        self.t_launch = time.monotonic()
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0)
        self.buf = b""
        self.err = b""

    def wait_prompt(self, timeout=600.0):
        """Reads until the output ends with the prompt; returns the text before it (and the time it appeared)."""
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        efd = self.p.stderr.fileno()
        while True:
            i = self.buf.find(PROMPT)
            if i >= 0:
                out = self.buf[:i]
                self.buf = self.buf[i + len(PROMPT):]
                return out.decode(errors="replace")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no prompt; output so far: %r stderr: %r" % (self.buf[-500:], self.err[-500:]))
            r, _, _ = select.select([fd, efd], [], [], left)
            if efd in r:
                d = os.read(efd, 65536)
                self.err += d
            if fd in r:
                d = os.read(fd, 65536)
                if not d:
                    raise EOFError("monitor exited; output: %r stderr: %r" % (self.buf[-500:], self.err[-2000:]))
                self.buf += d

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def cmd(self, line, timeout=600.0):
        """Sends one command and waits for the next prompt; returns (output, seconds)."""
        t0 = time.monotonic()
        self.send(line)
        out = self.wait_prompt(timeout)
        return out, time.monotonic() - t0

    def quit(self):
        try:
            self.send("quit")
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()
        return self.p.returncode


def qemu_argv(*images):
    argv = ["qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none", "-monitor", "stdio"]
    for i, img in enumerate(images):
        argv += ["-drive", "file=%s,if=none,id=virtio%d" % (img, i)]
    return argv


def livemon_argv(launcher, *images):
    argv = [launcher, "-M", "none", "-nodefaults", "-display", "none"]
    for i, img in enumerate(images):
        argv += ["-drive", "file=%s,if=none,id=virtio%d" % (img, i)]
    return argv
