#!/usr/bin/env bash
# Prompt-latency benchmark (issue 4): `info block-jobs` reply latency while two unthrottled streams run on two
# devices, livemon and QEMU 7.2 in the same run. See bench/prompt_latency.py.
#
# Usage: bench/prompt-latency.sh [SAMPLES]   (default 1000 per monitor). Needs ~5 GiB free in $TMPDIR (default /tmp).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
samples="${1:-1000}"
tmp="${TMPDIR:-/tmp}"
bench_need_space "$tmp" 5
work="$(mktemp -d "$tmp/livemon-bench-latency.XXXXXX")"
trap 'rm -rf "$work"' EXIT
bench_build "$work/classes"
echo "machine: $(bench_machine)"
python3 "$bench_root/bench/prompt_latency.py" "$bench_root/livemon" "$work" "$samples"
