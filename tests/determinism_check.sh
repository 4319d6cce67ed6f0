#!/bin/sh
# The same seed writes the same adapter, byte for byte, while other
# processes load every core: `clora train` on the tiny GPT-2 (the model's
# dropout on, an evaluation batch of another shape before training) RUNS
# times under three busy loops, each adapter compared with the first; then
# PEFT's variants, each VARIANT_RUNS times: DoRA with dropout on the LoRA
# branch, LoRA on the token table wte (its gradient a scatter over token
# ids), and bias "all" (every bias trains).
#   determinism_check.sh CLORA [RUNS [VARIANT_RUNS]]
set -u
clora=$1
runs=${2:-20}
variant_runs=${3:-4}
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

# check NAME RUNS OPTIONS...: trains RUNS times with OPTIONS, each adapter
# compared with the first run's
check() {
    name=$1 count=$2
    shift 2
    i=1
    while [ "$i" -le "$count" ]; do
        out=$work/$name$i
        "$clora" train --model "$golden/tiny_gpt2" --data "$golden/next_token_24x10.safetensors" \
            --out "$out" --rank 4 --alpha 8 --steps 6 --batch-size 4 --lr 0.05 --seed 1 \
            --log "$out.csv" "$@" > "$out.log" 2>&1 \
            || { cat "$out.log"; fail "clora train ($name, run $i)"; }
        for f in adapter_model.safetensors adapter_config.json; do
            cmp -s "$work/${name}1/$f" "$out/$f" \
                || { paste -d' ' "$work/${name}1.csv" "$out.csv"; fail "$name: run $i wrote another $f than run 1"; }
        done
        echo "ok: $name run $i, the same adapter as run 1 (final loss $(tail -1 "$out.csv" | cut -d, -f3))"
        i=$((i + 1))
    done
}

check lora "$runs" --targets c_attn,c_fc
check dora "$variant_runs" --targets c_attn,c_fc --dora --dropout 0.1
check wte "$variant_runs" --targets wte,c_attn
check bias-all "$variant_runs" --targets c_attn --bias all
