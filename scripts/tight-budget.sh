#!/usr/bin/env bash
# Evidence for the tight-budget options of `compress`, on one dense baseline, one target, one
# budget and one schedule. Each variant is one run; the table goes to OUT/tight-budget.md.
#
#   scripts/tight-budget.sh [MODEL] [DATASET] [OUT] [BASELINE.safetensors]
#
# Variants (VARIANTS, space-separated, default all of them, in this order):
#   retry  --retry-round-factor 1.3. Its rounds up to the first rejected one are exactly the
#          default run's (every round's seed follows from the run's seed and the round number),
#          so this one run shows the default decision too: the default stops at that rejection.
#   recover  retry's flags and --recovery-epochs 1 (one more fine-tuning epoch while a round is
#            below the budget)
#   near   recover's flags and --recovery-margin $NEAR_MARGIN (that epoch also while a round is
#          within NEAR_MARGIN points above the budget: longer fine-tuning only near it)
#   late   --late-round-factor 1.3 --late-after $LATE_AFTER (finer rounds once the model is small)
# Every round's report also carries its paired validation drop and standard error, so what
# --budget-confidence would have decided can be read off any of these runs without another.
#
# MODEL (a zoo name or a model JSON file) defaults to examples/models/mnist-small.json, DATASET to
# mnist (data under $AUTOCOMPRESS_DATA/DATASET or datasets/DATASET). Without a baseline file one
# is trained first (BASELINE_EPOCHS, 5). TARGET, BUDGET, ROUND_FACTOR and SCHEDULE (extra
# compress flags) can be set in the environment; BIN names the binary (default: build and use
# target/release/autocompress). Finished runs are kept and an interrupted one
# is resumed, so the script can be run again after a stop.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${1:-examples/models/mnist-small.json}
DATASET=${2:-mnist}
OUT=${3:-runs/tight-budget-$(basename "$MODEL" .json)-$DATASET}
BASELINE=${4:-}
TARGET=${TARGET:-params:20x}
BUDGET=${BUDGET:-0.5}
ROUND_FACTOR=${ROUND_FACTOR:-2.72}
LATE_AFTER=${LATE_AFTER:-4x}
NEAR_MARGIN=${NEAR_MARGIN:-0.3}
VARIANTS=${VARIANTS:-retry recover near late}
# the schedule of scripts/ablate.sh (the 2026-11-28 ablation table)
SCHEDULE=${SCHEDULE:---admm-updates 4 --rho-growth 4 --admm-steps 100 --retrain-epochs 2 --quick-steps 20 --max-iterations 12}

if [[ "$MODEL" == *.json ]]; then MODEL_ARGS=(--model-json "$MODEL"); else MODEL_ARGS=(--model "$MODEL"); fi
source scripts/runs.sh
use_binary
use_baseline "$BASELINE" "${MODEL_ARGS[@]}"
# shellcheck disable=SC2206
COMPRESS_FLAGS=(--round-factor "$ROUND_FACTOR" $SCHEDULE)


for v in $VARIANTS; do
    case $v in
        retry) run retry --retry-round-factor 1.3 ;;
        late) run late --late-round-factor 1.3 --late-after "$LATE_AFTER" ;;
        recover) run recover --retry-round-factor 1.3 --recovery-epochs 1 ;;
        near) run near --retry-round-factor 1.3 --recovery-epochs 1 --recovery-margin "$NEAR_MARGIN" ;;
        *) echo "unknown variant '$v' (choose retry, recover, near, late)" >&2; exit 2 ;;
    esac
done

dirs=()
for n in retry recover near late; do
    [[ -f "$OUT/$n/report.json" ]] && dirs+=("$OUT/$n")
done
{
    echo "# Tight-budget options: $MODEL on $DATASET, target $TARGET, budget $BUDGET points"
    echo
    echo "Schedules: round factor $ROUND_FACTOR, $SCHEDULE; one baseline ($BASELINE) for every run."
    echo
    "$BIN" compare "${dirs[@]}"
    echo
    echo "Per round (paired validation drop ± its standard error, in points; the upper bounds are"
    echo "what --budget-confidence 0.9 / 0.95 would have compared with the budget):"
    echo
    echo "| run | round | factor | accepted | params × | FLOPs × | val drop | ± s.e. | 90% bound | 95% bound | test |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for d in "${dirs[@]}"; do
        jq -r --arg run "$(basename "$d")" '.rounds[] | "| \($run) | \(.round) | \(.round_factor) | \(.accepted) | \(.params_reduction*10|round/10) | \(.flops_reduction*10|round/10) | \(.paired_val_drop.drop*100|round/100) | \(.paired_val_drop.standard_error*100|round/100) | \((.paired_val_drop.drop + 1.2816*.paired_val_drop.standard_error)*100|round/100) | \((.paired_val_drop.drop + 1.6449*.paired_val_drop.standard_error)*100|round/100) | \(.test_accuracy*10000|round/100)% |"' "$d/report.json"
    done
} > "$OUT/tight-budget.md"
cat "$OUT/tight-budget.md"
