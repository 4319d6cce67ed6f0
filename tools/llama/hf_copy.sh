#!/bin/sh
# The Python environment (hf_env.sh) in WORK_DIR/hfenv and, once, a Hugging
# Face folder WORK_DIR/hf holding a GGUF file's weights dequantized by the
# gguf package (gguf_to_hf.py), for the scripts that run transformers beside
# clora.
#   tools/llama/hf_copy.sh MODEL.gguf WORK_DIR
set -eu
here=$(dirname "$0")
"$here/hf_env.sh" "$2/hfenv"
[ -f "$2/hf/model.safetensors" ] || "$2/hfenv/bin/python" "$here/gguf_to_hf.py" "$1" "$2/hf"
