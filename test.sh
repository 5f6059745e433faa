#!/usr/bin/env bash
# The project's whole test suite: unit and integration tests (Maven), the monitor sample scripts, and the QEMU
# conformance scenarios the project carries (conformance/, expectations recorded from QEMU 7.2). Where ../shared is
# present (or $LIVEMON_SHARED), its conformance scenarios that the project does not carry run too.
# Where qemu-system-x86_64 is installed, the differential fuzzer (fuzz/) also plays its fixed seed budget
# (fuzz/ci-seeds) on QEMU 7.2 and livemon and fails on any divergence.
# Needs JDK 17, Maven, qemu-utils and python3; run from anywhere. About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
mvn -B verify

echo "== samples/*.hmp (replayed on the demo chain, --strict)"
for s in samples/*.hmp; do
    echo "-- $s"
    ./livemon --strict -x "$s" </dev/null >/dev/null || { echo "sample $s failed"; exit 1; }
done

# Scenario folders under $1. With $2 (for ../shared's scenarios): those not listed in
# conformance-expected-failures.txt and not carried unchanged by the project already. The project's own scenarios
# must all pass.
runnable() {
    local root="$1" shared_set="${2:-}" d name
    for d in "$root"/*/; do
        name="$(basename "$d")"
        if [ -n "$shared_set" ]; then
            grep -q "^$name[[:space:]]" conformance-expected-failures.txt && continue
            if [ -d "conformance/scenarios/$name" ] \
                && diff -rq "$d" "conformance/scenarios/$name" >/dev/null 2>&1; then
                continue
            fi
        fi
        echo "$d"
    done
}

echo "== conformance: the project's scenarios"
mapfile -t own < <(runnable conformance/scenarios)
python3 conformance/run "${own[@]}"

shared="${LIVEMON_SHARED:-../shared}"
if [ -x "$shared/conformance/run" ]; then
    mapfile -t more < <(runnable "$shared/conformance/scenarios" shared)
    if [ "${#more[@]}" -gt 0 ]; then
        echo "== conformance: $shared's scenarios the project does not carry (expected failures skipped: see conformance-expected-failures.txt)"
        "$shared/conformance/run" "${more[@]}"
    fi
fi

if command -v qemu-system-x86_64 >/dev/null 2>&1; then
    seeds="$(grep -v '^#' fuzz/ci-seeds | tr -s '[:space:]' ',' | sed 's/^,//; s/,$//')"
    echo "== differential fuzzer against QEMU 7.2: seeds $seeds (fuzz/ci-seeds, docs/testing.md)"
    python3 fuzz/difffuzz.py --seeds "$seeds" --jobs 2
else
    echo "== differential fuzzer skipped: it needs qemu-system-x86_64 (qemu-system-x86; .ci/run installs it)"
fi
