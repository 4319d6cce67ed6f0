#!/bin/sh
# SmolLM2 in clora against transformers' LlamaForCausalLM on the same
# weights: the GGUF file becomes a Hugging Face folder (the gguf package
# dequantizes), a chat prompt's logits must agree within 1e-3 of the logit
# scale, and greedy generations token for token.
#   tools/llama/smollm_check.sh CLORA MODEL.gguf WORK_DIR
set -eu
clora=$1
gguf=$2
work=$3
here=$(dirname "$0")
env="$work/hfenv"
"$here/hf_copy.sh" "$gguf" "$work"
prompt="Write a short poem about the sea."
ids=$("$clora" encode --model "$gguf" --chat --text "$prompt")
"$clora" logits --model "$gguf" --tokens "$ids" --out "$work/check_logits.safetensors" > /dev/null
"$clora" generate --model "$gguf" --tokens "$ids" --max-new 64 --print-ids \
    > "$work/check_generate.txt" 2> "$work/check_generate.err"
generated=$(tail -n 1 "$work/check_generate.txt")
"$env/bin/python" "$here/compare_hf.py" "$work/hf" "$ids" "$work/check_logits.safetensors" \
    "$generated"
