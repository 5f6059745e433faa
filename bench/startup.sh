#!/usr/bin/env bash
# Start-up benchmark (issue 3): launch -> first "(qemu) " prompt, ./livemon vs qemu-system-x86_64 -M none, same run.
# See bench/startup.py. Usage: bench/startup.sh [RUNS]   (default 20 per command).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
runs="${1:-20}"
tmp="${TMPDIR:-/tmp}"
work="$(mktemp -d "$tmp/livemon-bench-startup.XXXXXX")"
trap 'rm -rf "$work"' EXIT
bench_build "$work/classes"
echo "machine: $(bench_machine)"
python3 "$bench_root/bench/startup.py" "$bench_root" "$work" "$runs"
