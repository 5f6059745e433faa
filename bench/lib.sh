# Shared helpers for the livemon benchmarks (sourced, not run). Not part of the test suite.
# shellcheck shell=bash

bench_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Builds target/livemon.jar (unless it is current) and compiles the benchmark drivers of src/test/java/io/livemon/bench
# into $1 with javac against the jar (no Maven test build needed).
bench_build() {
    local classes="$1"
    local jar="$bench_root/target/livemon.jar"
    if [ ! -f "$jar" ] || [ -n "$(find "$bench_root/src/main" "$bench_root/pom.xml" -newer "$jar" -print -quit 2>/dev/null)" ]; then
        echo "building target/livemon.jar ..." >&2
        (cd "$bench_root" && mvn -q -B -DskipTests package) >&2
        rm -f "$bench_root/target/livemon.jsa"
    fi
    mkdir -p "$classes"
    javac -nowarn -cp "$jar" -d "$classes" "$bench_root"/src/test/java/io/livemon/bench/*.java
}

# Fails unless the file system holding $1 has at least $2 GiB available.
bench_need_space() {
    local avail_kb
    avail_kb=$(df -Pk "$1" | awk 'NR==2 {print $4}')
    if [ "$avail_kb" -lt $(( $2 * 1024 * 1024 )) ]; then
        echo "bench: need $2 GiB free in $1, have $(( avail_kb / 1024 / 1024 )) GiB" >&2
        exit 1
    fi
}

# Drops the page cache when we may (root, writable /proc/sys/vm/drop_caches); prints "yes" or "no".
bench_drop_caches() {
    sync
    if { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
        echo yes
    else
        echo no
    fi
}

bench_now() {
    date +%s.%N
}

# seconds between two bench_now stamps
bench_elapsed() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'
}

# median of the arguments
bench_median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# MB/s (10^6 bytes per second) for $1 bytes in $2 seconds
bench_mbps() {
    awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'
}

# ratio $1 / $2 with two decimals
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

bench_machine() {
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -r), $(java -version 2>&1 | head -1), $(qemu-img --version | head -1)"
}
