#!/usr/bin/env bash
# One command for a GPU owner to reproduce our figures: builds in release mode, then on the
# machine's best adapter runs `bench` (every shape, backward passes too) and a timed `train` and
# `compress` of full-width vgg16 on the CIFAR-10 files under $AUTOCOMPRESS_DATA/cifar-10, then
# times every vgg16 convolution dense and compacted (`bench --layers`).
# Every report and log lands in one output directory.
#
#   AUTOCOMPRESS_DATA=/path/to/datasets scripts/gpu-cifar.sh [OUT]    (OUT: runs/gpu-<date>)
#
# Environment: EPOCHS (vgg16 training, default 60: the converged recipe at width 0.25), WIDTH (width multiplier, default 1), TARGET
# (default params:10x), BUDGET (points, default 1.0), BENCH_FLAGS (default --backward
# --train-steps 100), extra flags in TRAIN_FLAGS and
# COMPRESS_FLAGS (word-split), AUTOCOMPRESS_ADAPTER to pick an adapter by name. compress keeps
# vgg16's per-round schedules, sized for width 0.25 on a CPU (README); a GPU can afford longer
# ones, e.g. COMPRESS_FLAGS="--admm-steps 400 --finetune-epochs 20 --quick-steps 50".
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu-cifar-$(date +%Y%m%d-%H%M%S)}
: "${AUTOCOMPRESS_DATA:?set AUTOCOMPRESS_DATA to the directory holding cifar-10/}"
[ -d "$AUTOCOMPRESS_DATA/cifar-10" ] || { echo "gpu-cifar: no cifar-10/ under $AUTOCOMPRESS_DATA" >&2; exit 1; }
EPOCHS=${EPOCHS:-60}
WIDTH=${WIDTH:-1}
mkdir -p "$OUT"
: > "$OUT/times.txt"
BIN=target/release/autocompress

step() { # name, command...: runs it, logs it, records its wall time
    local name=$1; shift
    echo "== $name: $*" | tee -a "$OUT/times.txt"
    local t0=$SECONDS
    "$@" > "$OUT/$name.log" 2>&1 || { echo "gpu-cifar: $name failed, see $OUT/$name.log" >&2; tail -5 "$OUT/$name.log" >&2; exit 1; }
    echo "   $name: $((SECONDS - t0)) s" | tee -a "$OUT/times.txt"
}

step build cargo build --release
# shellcheck disable=SC2086 # the *_FLAGS are lists of flags
step bench "$BIN" bench --json ${BENCH_FLAGS:---backward --train-steps 100}
# shellcheck disable=SC2086
step train "$BIN" train --model vgg16 --width-multiplier "$WIDTH" --dataset cifar-10 --epochs "$EPOCHS" \
    --out "$OUT/vgg16-train" ${TRAIN_FLAGS:-}
# shellcheck disable=SC2086
step compress "$BIN" compress --model-file "$OUT/vgg16-train/model.safetensors" --dataset cifar-10 \
    --target "${TARGET:-params:10x}" --budget "${BUDGET:-1.0}" --force --out "$OUT/vgg16-compress" ${COMPRESS_FLAGS:-}
step layers "$BIN" bench --layers "$OUT/vgg16-train/model.safetensors" --compacted "$OUT/vgg16-compress/model.safetensors" --json
echo "gpu-cifar: reports in $OUT (times.txt, bench.log, layers.log: one JSON object per line; vgg16-train/, vgg16-compress/)"
