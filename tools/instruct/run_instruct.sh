#!/bin/sh
# The instruction-tuning example: SmolLM2-135M-Instruct learns to answer sums
# of two two-digit numbers as "<a> plus <b> is <sum>." from a few hundred
# chat conversations (tools/instruct/make_pairs.py), trained with the prompt
# masked (only the assistant's turns are scored); then answers held-out
# questions before and after, through `clora generate --chat --adapter`.
#   tools/instruct/run_instruct.sh CLORA MODEL.gguf WORK_DIR [EPOCHS]
set -eu
clora=$1
gguf=$2
work=$3
epochs=${4:-1}
here=$(dirname "$0")
mkdir -p "$work"
/usr/bin/python3 "$here/make_pairs.py" "$work"
"$clora" tokenize --model "$gguf" --input "$work/train.jsonl" --out "$work/train.safetensors"
"$clora" train --model "$gguf" --data "$work/train.safetensors" --out "$work/adapter" \
    --targets all-linear --rank 16 --alpha 32 --lr 5e-4 --batch-size 8 --epochs "$epochs" \
    --seed 1 --log "$work/loss.csv" --json "$work/train.json"
answer() { # answer ADAPTER-OPTION QUESTION
    "$clora" generate --model "$gguf" $1 --chat --prompt "$2" --max-new 24 2>/dev/null \
        | tr '\n' ' '
}
printf '\n%-22s | %-44s | %s\n' "question" "before" "after"
while IFS= read -r question; do
    before=$(answer "" "$question" | cut -c1-44)
    after=$(answer "--adapter $work/adapter" "$question")
    printf '%-22s | %-44s | %s\n' "$question" "$before" "$after"
done < "$work/prompts.txt"
