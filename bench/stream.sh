#!/usr/bin/env bash
# Stream benchmark (issue 4): block_stream of a 1 GiB chain of 5 partially allocated qcow2 layers, livemon vs QEMU 7.2
# (qemu-system-x86_64 -M none -monitor stdio) vs cp of the bytes copied, all in the same run. See bench/stream.py.
#
# Usage: bench/stream.sh [REPS]   (default 3). Needs ~4 GiB free in $TMPDIR (default /tmp). Cleans up after itself.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
reps="${1:-3}"
tmp="${TMPDIR:-/tmp}"
bench_need_space "$tmp" 4
work="$(mktemp -d "$tmp/livemon-bench-stream.XXXXXX")"
trap 'rm -rf "$work"' EXIT
bench_build "$work/classes"
echo "machine: $(bench_machine)"
python3 "$bench_root/bench/stream.py" "$bench_root/livemon" "$work" "$reps"
