#!/usr/bin/env bash
# The GPU check, sized for 8 minutes on one large GPU, no data set needed. On the machine's best
# adapter (or AUTOCOMPRESS_ADAPTER) it runs, in order:
#   1. the kernel correctness tests (every variant against its CPU reference, the tuner);
#   2. the autotuner and `bench` over every shape, dense and pruned at 2×, 4× and 8×, forward
#      and backward (`bench --tune --backward`), with LeNet-5 training throughput;
#   3. vgg16 training throughput at width 1 (CIFAR-sized input).
# Everything lands in OUT/gpu-run.json: one object with the adapter, the tuned shapes, every bench
# row, both training figures, the tests' summary lines and each step's seconds. Logs beside it.
#
#   scripts/gpu-run.sh [OUT]                       (OUT: runs/gpu-run-<date>)
#
# Where the machine has no Rust toolchain, build here and carry the binaries:
#   cargo build --release && cargo test --release --no-run --test kernels --test gemm \
#       --test variants --test network --test tune          (then TESTS=<dir of those binaries>)
# Environment: BIN (default target/release/autocompress), TESTS (a directory of prebuilt test
# binaries; default: cargo test when cargo exists, else the tests are skipped and the JSON says
# so), PEAK_GFLOPS (the adapter's fp32 peak, for each row's fraction), FACTORS (default 2,4,8),
# TRAIN_STEPS (default 200), VGG_STEPS (default 30), REPS (default 10), FILTER (bench shapes).
# The tuning cache goes to OUT/tune.json unless AUTOCOMPRESS_TUNE_CACHE says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu-run-$(date +%Y%m%d-%H%M%S)}
BIN=${BIN:-target/release/autocompress}
mkdir -p "$OUT"
export AUTOCOMPRESS_TUNE_CACHE=${AUTOCOMPRESS_TUNE_CACHE:-$OUT/tune.json}
times=()

step() { # name, command...: runs it into OUT/name.log, records its seconds
    local name=$1; shift
    echo "== $name: $*"
    local t0=$SECONDS
    "$@" > "$OUT/$name.log" 2>&1 || { echo "gpu-run: $name failed, see $OUT/$name.log" >&2; tail -20 "$OUT/$name.log" >&2; exit 1; }
    times+=("\"$name\": $((SECONDS - t0))")
    echo "   $name: $((SECONDS - t0)) s"
}

if [[ ! -x "$BIN" ]]; then
    command -v cargo >/dev/null || { echo "gpu-run: no $BIN and no cargo to build it (set BIN)" >&2; exit 1; }
    step build cargo build --release
fi

tests=(kernels gemm variants network tune)
run_tests() {
    if [[ -n "${TESTS:-}" ]]; then
        for t in "${tests[@]}"; do
            local exe
            exe=$(find "$TESTS" -maxdepth 1 -type f -executable -name "$t-*" | head -1)
            [[ -n "$exe" ]] || { echo "no test binary $t-* in $TESTS"; return 1; }
            echo "# $t"
            CI=true "$exe"
        done
    else
        CI=true cargo test --release "${tests[@]/#/--test=}"
    fi
}
if [[ -n "${TESTS:-}" ]] || command -v cargo >/dev/null; then
    step tests run_tests
    test_summary=$(grep -E '^test result:' "$OUT/tests.log" | sed 's/"/\\"/g; s/^/"/; s/$/"/' | paste -sd, -)
else
    test_summary='"not run: no cargo and no TESTS directory"'
fi

peak=()
[[ -n "${PEAK_GFLOPS:-}" ]] && peak=(--peak-gflops "$PEAK_GFLOPS")
filter=()
[[ -n "${FILTER:-}" ]] && filter=(--filter "$FILTER")
step bench "$BIN" bench --json --tune --backward --reps "${REPS:-10}" --factors "${FACTORS:-2,4,8}" \
    --train-steps "${TRAIN_STEPS:-200}" "${filter[@]}" "${peak[@]}"
step vgg16 "$BIN" bench --json --filter vgg16_train --train-model vgg16 --width-multiplier 1 \
    --train-steps "${VGG_STEPS:-30}" --factors 2

# one JSON object: the bench lines are JSON objects already, one per line
{
    echo "{\"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo " \"adapter\": $(grep -m1 '^{"adapter"' "$OUT/bench.log"),"
    echo " \"tuned\": [$(grep '^{"tuned"' "$OUT/bench.log" | paste -sd, -)],"
    echo " \"rows\": [$(grep -E '^\{' "$OUT/bench.log" | grep -v -E '^\{"(adapter|tuned)"' | paste -sd, -)],"
    echo " \"vgg16_train\": [$(grep '"images_per_second"' "$OUT/vgg16.log" | paste -sd, -)],"
    echo " \"tests\": [$test_summary],"
    echo " \"seconds\": {$(IFS=,; echo "${times[*]}")}}"
} > "$OUT/gpu-run.json"
echo "gpu-run: $OUT/gpu-run.json ($(wc -c < "$OUT/gpu-run.json") bytes); logs and tune.json beside it"
