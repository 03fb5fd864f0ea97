#!/bin/bash
# Converged dense baselines on the CIFAR-10 files: vgg16 (60 epochs) and resnet18 (40 epochs) at
# width 0.25, with train's CIFAR defaults, which are the anchor recipe of SPEC.md's evidence
# (SGD 0.05, momentum 0.9, weight decay 5e-4, one warm-up epoch, cosine, batch 64, random crops
# and flips, the 90/10 split). Run it again after an interruption: a finished model is kept and
# an interrupted one continues from its last complete epoch (`train --resume`).
#
#   AUTOCOMPRESS_DATA=../shared/datasets scripts/cifar-baselines.sh [OUT (runs/cifar-baselines)]
#
# Each run's report.json has its per-epoch curve; `compress --model-file OUT/vgg16-w025/model.safetensors`
# prunes from it.
set -euo pipefail
OUT=${1:-runs/cifar-baselines}
if [[ -z "${BIN:-}" ]]; then
    cargo build --release --quiet
    BIN=target/release/autocompress
fi
for spec in "vgg16 60" "resnet18 40"; do
    read -r model epochs <<< "$spec"
    dir="$OUT/$model-w025"
    if [[ -f "$dir/report.json" && ! -f "$dir/checkpoint.safetensors" ]]; then
        echo "$dir: finished"
        continue
    fi
    resume=()
    [[ -f "$dir/checkpoint.safetensors" ]] && resume=(--resume)
    "$BIN" train --model "$model" --width-multiplier 0.25 --dataset cifar-10 --epochs "$epochs" --out "$dir" "${resume[@]}"
done
