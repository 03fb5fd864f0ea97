# Shared by scripts/ablate.sh, tight-budget.sh and guided-vs-unguided.sh (sourced, not run):
# the binary, the baseline, and one resumable compress run per name.
#
# Expects OUT, DATASET, TARGET and BUDGET; COMPRESS_FLAGS (an array) holds flags every run shares.

# BIN names the binary; default: build and use target/release/autocompress.
use_binary() {
    if [[ -z "${BIN:-}" ]]; then
        cargo build --release --quiet
        BIN=target/release/autocompress
    fi
    mkdir -p "$OUT"
}

# Sets BASELINE to $1 or, when empty, to OUT/baseline/model.safetensors, trained once with the
# `train` flags that follow (BASELINE_EPOCHS epochs, 5 by default).
use_baseline() {
    BASELINE=$1
    shift
    if [[ -z "$BASELINE" ]]; then
        BASELINE="$OUT/baseline/model.safetensors"
        [[ -f "$BASELINE" ]] || "$BIN" train "$@" --dataset "$DATASET" --epochs "${BASELINE_EPOCHS:-5}" --out "$OUT/baseline"
    fi
}

# run NAME [FLAGS...]: one compress run from the baseline into OUT/NAME. A finished run is kept
# and an interrupted one resumed, so a script can be run again after a stop.
run() {
    local name=$1
    shift
    if [[ -f "$OUT/$name/report.json" ]] && grep -q '"status": "finished"' "$OUT/$name/state.json" 2>/dev/null; then
        echo "== $name: already done"
        return
    fi
    echo "== $name: $*"
    local resume=()
    [[ -f "$OUT/$name/state.json" ]] && resume=(--resume)
    "$BIN" compress --dataset "$DATASET" --model-file "$BASELINE" --target "$TARGET" --budget "$BUDGET" \
        "${COMPRESS_FLAGS[@]}" "$@" "${resume[@]}" --out "$OUT/$name" > "$OUT/$name.log" 2>&1 \
        || echo "   (failed: see $OUT/$name.log)"
}
