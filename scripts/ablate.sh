#!/usr/bin/env bash
# The ablation table of SPEC.md §7 on one data set: combined vs filter-only vs column-only
# schemes (RQ1/RQ2), guided vs unguided annealing vs uniform rates (RQ3), with and without
# purification (RQ4). Every run starts from the same dense baseline and uses the same target,
# budget and schedules; the table goes to OUT/ablation.md. Finished runs are kept, an
# interrupted one is resumed, so the script can be run again after a stop.
#
#   scripts/ablate.sh [MODEL] [DATASET] [OUT] [BASELINE.safetensors]
#
# MODEL (a zoo name or a model JSON file) defaults to lenet5, DATASET to mnist (data under $AUTOCOMPRESS_DATA/DATASET or
# datasets/DATASET). Without a baseline file one is trained first (BASELINE_EPOCHS, 5). TARGET,
# BUDGET, ROUND_FACTOR and SCHEDULE (extra compress flags) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${1:-lenet5}
DATASET=${2:-mnist}
OUT=${3:-runs/ablation-$(basename "$MODEL" .json)-$DATASET}
BASELINE=${4:-}
TARGET=${TARGET:-params:20x}
BUDGET=${BUDGET:-0.5}
ROUND_FACTOR=${ROUND_FACTOR:-4.5}
# shorter than compress's defaults so that six runs fit in about an hour on two CPU cores
SCHEDULE=${SCHEDULE:---admm-updates 4 --rho-growth 4 --admm-steps 100 --retrain-epochs 2 --quick-steps 20 --max-iterations 12}

if [[ "$MODEL" == *.json ]]; then MODEL_ARGS=(--model-json "$MODEL"); else MODEL_ARGS=(--model "$MODEL"); fi
source scripts/runs.sh
BIN=''
use_binary
use_baseline "$BASELINE" "${MODEL_ARGS[@]}"
# shellcheck disable=SC2206
COMPRESS_FLAGS=(--round-factor "$ROUND_FACTOR" $SCHEDULE)


run combined-guided
run filter-only --schemes filter
run column-only --schemes column
run unguided --search unguided
run uniform --search uniform
run no-purify --no-purify

dirs=()
for n in combined-guided filter-only column-only unguided uniform no-purify; do
    [[ -f "$OUT/$n/report.json" ]] && dirs+=("$OUT/$n")
done
{
    echo "# Ablation: $MODEL on $DATASET, target $TARGET, budget $BUDGET points"
    echo
    echo "Schedules: round factor $ROUND_FACTOR, $SCHEDULE; one baseline ($BASELINE) for every run."
    echo
    "$BIN" compare "${dirs[@]}"
} > "$OUT/ablation.md"
cat "$OUT/ablation.md"
