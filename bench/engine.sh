#!/usr/bin/env bash
# Engine benchmark (issue 2): sequential guest-visible read of a fully allocated 1 GiB chain of 5 qcow2 layers through
# livemon's engine, a 1 GiB write into a new overlay, against qemu-img convert and cp of the same bytes, same run.
#
# The chain: file-A.img <- B <- C <- D <- E (qcow2, 64 KiB clusters, 1 GiB each); layer k allocates the k-th fifth of
# the disk (2 MiB-aligned, pattern 0x11*k), so every guest byte is allocated in exactly one layer and reading E visits
# all five. Each measurement runs REPS times with a warm page cache (median reported) and once cold (page cache
# dropped first) when the machine lets us drop caches.
#
# Usage: bench/engine.sh [REPS]   (default 3). Needs ~5 GiB free in $TMPDIR (default /tmp). Cleans up after itself.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
reps="${1:-3}"
size=$((1024 * 1024 * 1024))

tmp="${TMPDIR:-/tmp}"
bench_need_space "$tmp" 5
work="$(mktemp -d "$tmp/livemon-bench-engine.XXXXXX")"
trap 'rm -rf "$work"' EXIT
bench_build "$work/classes"
cp="$work/classes:$bench_root/target/livemon.jar"
cd "$work"

echo "creating the 1 GiB 5-layer chain in $work ..." >&2
prev=""
bounds=(0 204 409 614 819 1024)
i=0
for l in A B C D E; do
    if [ -z "$prev" ]; then
        qemu-img create -q -f qcow2 "file-$l.img" 1G
    else
        qemu-img create -q -f qcow2 -b "$prev" -F qcow2 "file-$l.img" 1G
    fi
    start=$(( bounds[i] * 1024 * 1024 ))
    len=$(( (bounds[i + 1] - bounds[i]) * 1024 * 1024 ))
    qemu-io -f qcow2 -c "write -P $(( 0x11 * (i + 1) )) $start $len" "file-$l.img" >/dev/null
    prev="file-$l.img"
    i=$((i + 1))
done
qemu-img convert -O raw file-E.img chain.raw   # the same guest bytes as a raw file, for cp
sync

can_drop=$(bench_drop_caches)

# run_case NAME COMMAND...: runs the command once cold (if caches can be dropped) and $reps times warm.
# A command that prints "seconds=S" reports its own in-process time, which is used instead of the wall time.
declare -A warm cold wall
run_case() {
    local name="$1"; shift
    local times=() walls=() t0 t1 out s
    local runs=$reps
    [ "$can_drop" = yes ] && runs=$((reps + 1))
    for r in $(seq 1 "$runs"); do
        if [ "$can_drop" = yes ] && [ "$r" -eq 1 ]; then
            bench_drop_caches >/dev/null
        fi
        rm -f out.raw ov.img
        sync
        t0=$(bench_now)
        out=$("$@")
        t1=$(bench_now)
        s=$(bench_elapsed "$t0" "$t1")
        w=$s
        if [[ "$out" =~ seconds=([0-9.]+) ]]; then
            s="${BASH_REMATCH[1]}"
        fi
        if [ "$can_drop" = yes ] && [ "$r" -eq 1 ]; then
            cold[$name]=$s
        else
            times+=("$s"); walls+=("$w")
        fi
        echo "  $name run $r: ${s}s (wall ${w}s)" >&2
    done
    warm[$name]=$(bench_median "${times[@]}")
    wall[$name]=$(bench_median "${walls[@]}")
}

echo "measuring ($reps warm runs each$([ "$can_drop" = yes ] && echo ', plus one cold run after dropping the page cache')) ..." >&2
jvm=(java -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.logFile="$work/livemon.log" -cp "$cp")
qio_write=()
for k in $(seq 0 15); do qio_write+=(-c "write -P 0x5a $((k * 64 * 1024 * 1024)) 64M"); done
qemu_io_write() {
    qemu-img create -q -f qcow2 -b file-E.img -F qcow2 ov.img 1G
    qemu-io -f qcow2 "${qio_write[@]}" -c flush ov.img >/dev/null
}
run_case livemon-read  "${jvm[@]}" io.livemon.bench.EngineBench read "$work" file-E.img
run_case qemu-img-null qemu-img convert -n --target-image-opts file-E.img driver=null-co,size=$size
run_case qemu-img-raw  qemu-img convert -O raw file-E.img out.raw
run_case cat-read      sh -c 'cat chain.raw > /dev/null'
run_case cp            cp chain.raw out.raw
run_case livemon-write "${jvm[@]}" io.livemon.bench.EngineBench write "$work" ov.img file-E.img
run_case qemu-io-write qemu_io_write
rm -f out.raw ov.img

row() {
    local name="$1" what="$2"
    local c="-"
    [ -n "${cold[$name]:-}" ] && c="$(bench_mbps $size "${cold[$name]}")"
    printf '| %-34s | %8s | %8s | %8s |\n' "$what" "${warm[$name]}" "$(bench_mbps $size "${warm[$name]}")" "$c"
}
echo
echo "machine: $(bench_machine)"
echo "page cache dropped for cold runs: $can_drop; warm = median of $reps"
echo
printf '| %-34s | %8s | %8s | %8s |\n' "1 GiB, 5-layer chain" "warm s" "warm MB/s" "cold MB/s"
printf '|%s|%s|%s|%s|\n' "------------------------------------" "----------" "----------" "----------"
row livemon-read  "livemon engine read (2 MiB reqs)"
row qemu-img-null "qemu-img convert -> null-co"
row qemu-img-raw  "qemu-img convert -O raw -> file"
row cat-read      "cat raw > /dev/null"
row cp            "cp raw file"
row livemon-write "livemon engine write to overlay"
row qemu-io-write "qemu-io write to overlay (64M reqs)"
echo
echo "livemon read JVM wall time incl. start-up (warm): ${wall[livemon-read]}s"
echo "ratio livemon read / qemu-img convert->null (throughput, warm): $(bench_ratio "${warm[qemu-img-null]}" "${warm[livemon-read]}")  (target >= 1.00)"
echo "ratio livemon read / qemu-img convert -O raw (throughput, warm): $(bench_ratio "${warm[qemu-img-raw]}" "${warm[livemon-read]}")"
if [ -n "${cold[livemon-read]:-}" ]; then
    echo "ratio livemon read / qemu-img convert->null (throughput, cold): $(bench_ratio "${cold[qemu-img-null]}" "${cold[livemon-read]}")"
fi
echo "ratio livemon read / cp (throughput, warm): $(bench_ratio "${warm[cp]}" "${warm[livemon-read]}")"
echo "ratio livemon write / qemu-io write (throughput, warm): $(bench_ratio "${warm[qemu-io-write]}" "${warm[livemon-write]}")"
