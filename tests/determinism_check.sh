#!/bin/sh
# The same seed writes the same adapter, byte for byte, while other
# processes load every core: `clora train` on the tiny GPT-2 (dropout on,
# an evaluation batch of another shape before training) RUNS times under
# three busy loops, each adapter compared with the first.
#   determinism_check.sh CLORA [RUNS]
set -u
clora=$1
runs=${2:-20}
golden=$(dirname "$0")/golden
work=$(mktemp -d)
busy=""
cleanup() {
    for pid in $busy; do kill "$pid" 2> /dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { echo "FAILED: $*"; exit 1; }

for i in 1 2 3; do
    (while :; do :; done) &
    busy="$busy $!"
done

i=1
while [ "$i" -le "$runs" ]; do
    "$clora" train --model "$golden/tiny_gpt2" --data "$golden/next_token_24x10.safetensors" \
        --out "$work/run$i" --targets c_attn,c_fc --rank 4 --alpha 8 --steps 6 --batch-size 4 \
        --lr 0.05 --seed 1 --log "$work/run$i.csv" > "$work/run$i.log" 2>&1 \
        || { cat "$work/run$i.log"; fail "clora train (run $i)"; }
    for f in adapter_model.safetensors adapter_config.json; do
        cmp -s "$work/run1/$f" "$work/run$i/$f" \
            || { paste -d' ' "$work/run1.csv" "$work/run$i.csv"; fail "run $i wrote another $f than run 1"; }
    done
    echo "ok: run $i, the same adapter as run 1 (final loss $(tail -1 "$work/run$i.csv" | cut -d, -f3))"
    i=$((i + 1))
done
