#!/usr/bin/env bash
# Guided against unguided annealing (SPEC.md §7, RQ3) on a real model: LeNet-5 on MNIST by
# default. Every run starts from the same dense baseline, with the same validation split, target,
# budget, schedules and candidate count per round (the model's --max-iterations); only the
# search and the seed differ. Two seeds each. The table goes to OUT/guided-vs-unguided.md: the
# reduction reached, the test and validation change, and how many quick evaluations each round's
# search needed to first reach the action it returned ("evaluations to best", out of the
# evaluations it ran; cache hits are not counted).
#
#   scripts/guided-vs-unguided.sh [OUT] [BASELINE.safetensors]
#
# Without a baseline file one is trained first (`train`, BASELINE_EPOCHS = 5, seed 1: what
# `compress --model lenet5` trains). MODEL (lenet5), DATASET (mnist), TARGET (params:200x, above
# what a 0.2-point budget allows, so the reduction reached is what differs), BUDGET (0.2), SEEDS
# ("1 2") and SCHEDULE (extra compress flags, default none: lenet5's defaults) can be set in the
# environment; BIN names the binary (default: build and use target/release/autocompress).
# Finished runs are kept and an interrupted one is resumed, so the script can be run again after
# a stop. Time: one LeNet-5 run takes 35-60 minutes on a quiet two-core CPU, so four take 2.5-4 h.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-runs/guided-vs-unguided}
BASELINE=${2:-}
MODEL=${MODEL:-lenet5}
DATASET=${DATASET:-mnist}
TARGET=${TARGET:-params:200x}
BUDGET=${BUDGET:-0.2}
SEEDS=${SEEDS:-1 2}
SCHEDULE=${SCHEDULE:-}
source scripts/runs.sh
use_binary
use_baseline "$BASELINE" --model "$MODEL" --seed 1
# --split-seed 1: the baseline's validation images stay held out whatever the run's seed
# shellcheck disable=SC2206
COMPRESS_FLAGS=(--split-seed 1 $SCHEDULE)


names=()
for seed in $SEEDS; do
    for search in guided unguided; do
        run "$search-seed$seed" --search "$search" --seed "$seed"
        names+=("$search-seed$seed")
    done
done

dirs=()
for n in "${names[@]}"; do
    [[ -f "$OUT/$n/report.json" ]] && dirs+=("$OUT/$n")
done
{
    echo "# Guided vs unguided annealing: $MODEL on $DATASET, target $TARGET, budget $BUDGET points"
    echo
    echo "One baseline ($BASELINE) and validation split for every run; schedules: ${SCHEDULE:-the defaults of the model}."
    echo
    echo "| run | search | seed | params × | FLOPs × | val change | test change | rounds (accepted) | evaluations | evaluations to best, per round | mean share of evaluations to best | best quick accuracy, per round | minutes |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for d in "${dirs[@]}"; do
        jq -r --arg run "$(basename "$d")" '
          def r1: (. * 10 | round) / 10;
          def r2: (. * 100 | round) / 100;
          "| \($run) | \(.search) | \(.seed) | \(.params_reduction | r1) | \(.flops_reduction | r1)"
          + " | \((100 * (.final_val_accuracy - .baseline_val_accuracy)) | r2) | \((100 * (.final.test_accuracy - .baseline.test_accuracy)) | r2)"
          + " | \(.rounds | length) (\([.rounds[] | select(.accepted)] | length)) | \(.evaluations)"
          + " | \([.rounds[] | "\(.evaluations_to_best)/\(.evaluations)"] | join(", "))"
          + " | \(if (.rounds | length) > 0 then ([.rounds[] | .evaluations_to_best / .evaluations] | add / length | r2) else "–" end)"
          + " | \([.rounds[] | "\(100 * .best_quick_accuracy | r2)"] | join(", "))"
          + " | \(.wall_seconds / 60 | r1) |"' "$d/report.json"
    done
    echo
    "$BIN" compare "${dirs[@]}"
} > "$OUT/guided-vs-unguided.md"
cat "$OUT/guided-vs-unguided.md"
