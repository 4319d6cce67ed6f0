#!/bin/sh
# The `clora` command end to end: a short demo, then info, merge and train
# on what it saved; and bad paths and files, each of which must give a
# one-line error, a non-zero exit, and no output file.
#   cli_check.sh CLORA
set -u
clora=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }

# expect_error EXPECTED-TEXT COMMAND...: non-zero exit, one stderr line holding the text
expect_error() {
    text=$1
    shift
    if "$@" > "$work/out" 2> "$work/err"; then fail "succeeded: $*"; fi
    [ "$(wc -l < "$work/err")" -eq 1 ] || { cat "$work/err"; fail "not one line of error: $*"; }
    grep -q -- "$text" "$work/err" || { cat "$work/err"; fail "error lacks \"$text\": $*"; }
    echo "ok (error): $*"
}

"$clora" demo --steps-a 80 --steps-b 80 --out "$work/demo" > "$work/demo.log" 2>&1 \
    || { cat "$work/demo.log"; fail "clora demo"; }
grep -q "the base is intact" "$work/demo.log" || fail "demo: base not reported intact"
grep -q "Total trainable parameters after: 0" "$work/demo.log" || fail "demo: no freeze report"
for f in base/config.json base/model.safetensors adapter/adapter_config.json \
         adapter/adapter_model.safetensors loss.csv task_b_train.safetensors; do
    [ -f "$work/demo/$f" ] || fail "demo did not write $f"
done
head -1 "$work/demo/loss.csv" | grep -q "phase,step,loss,lr" || fail "loss.csv header"
echo "ok: demo"

"$clora" info "$work/demo/adapter" | grep -q "base_model.model.fc1.lora_A.weight" || fail "info adapter"
"$clora" info "$work/demo/base" | grep -q "head: linear 256 -> 10" || fail "info model"
"$clora" info "$work/demo/loss.csv" > /dev/null 2>&1 && fail "info on a CSV file succeeded"
echo "ok: info"

"$clora" merge --model "$work/demo/base" --adapter "$work/demo/adapter" --out "$work/merged" \
    > /dev/null || fail "merge"
[ -f "$work/merged/model.safetensors" ] || fail "merge wrote no model"
echo "ok: merge"

"$clora" train --model "$work/demo/base" --data "$work/demo/task_b_train.safetensors" \
    --out "$work/trained" --steps 20 --batch-size 16 --targets fc1,head --rank 2 \
    --log "$work/train.csv" > "$work/train.log" || { cat "$work/train.log"; fail "train"; }
grep -q "accuracy: " "$work/train.log" || fail "train printed no accuracy"
"$clora" info "$work/trained" | grep -q '"fc1","head"' || fail "trained adapter targets"
echo "ok: train"

# bad paths and files
head -c 100 "$work/demo/adapter/adapter_model.safetensors" > "$work/truncated.safetensors"
mkdir "$work/bad_adapter"
cp "$work/demo/adapter/adapter_config.json" "$work/bad_adapter/"
cp "$work/truncated.safetensors" "$work/bad_adapter/adapter_model.safetensors"
expect_error "no such file" "$clora" info "$work/nothing"
expect_error "passes the end" "$clora" info "$work/truncated.safetensors"
expect_error "passes the end" "$clora" merge --model "$work/demo/base" \
    --adapter "$work/bad_adapter" --out "$work/never1"
expect_error "config.json" "$clora" merge --model "$work/nothing" \
    --adapter "$work/demo/adapter" --out "$work/never2"
expect_error "passes the end" "$clora" train --model "$work/demo/base" \
    --data "$work/truncated.safetensors" --out "$work/never3"
expect_error "not found in the model: nope" "$clora" train --model "$work/demo/base" \
    --data "$work/demo/task_b_train.safetensors" --out "$work/never4" --targets nope
expect_error "inputs" "$clora" train --model "$work/demo/base" \
    --data "$work/demo/adapter/adapter_model.safetensors" --out "$work/never5"
expect_error "required" "$clora" merge --model "$work/demo/base"
expect_error "unknown option" "$clora" train --bogus
expect_error "unknown command" "$clora" frobnicate
for d in never1 never2 never3 never4 never5; do
    [ -e "$work/$d" ] && fail "a failed command left $d behind"
done
echo "ok: bad inputs"
