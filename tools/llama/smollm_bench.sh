#!/bin/sh
# SmolLM2's generation speed in clora (clora bench --llama) and in PyTorch
# (tools/llama/torch_generate_bench.py) on the same float32 weights, the
# same threads, one after the other on this machine.
#   tools/llama/smollm_bench.sh CLORA MODEL.gguf WORK_DIR
set -eu
clora=$1
gguf=$2
work=$3
here=$(dirname "$0")
env="$work/hfenv"
"$here/hf_copy.sh" "$gguf" "$work"
"$clora" bench --only llama --llama "$gguf"
"$env/bin/python" "$here/torch_generate_bench.py" "$work/hf"
