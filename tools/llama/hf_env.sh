#!/bin/sh
# A Python environment for the Llama-family scripts (golden data, the
# SmolLM2 comparison, the tokenizer references): Debian's torch 1.13
# (python3-torch) seen from a venv that adds transformers 4.49 and PEFT
# 0.21 (the newest that work with it; Qwen2 needs transformers >= 4.37),
# tokenizers and the gguf package.
#   tools/llama/hf_env.sh DIR
set -eu
env=$1
if [ ! -x "$env/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$env"
fi
if ! "$env/bin/python" -c "import peft, transformers, tokenizers, gguf, sentencepiece, jinja2" 2>/dev/null; then
    "$env/bin/pip" install --quiet --no-deps transformers==4.49.0 peft==0.21.2 \
        tokenizers==0.21.0 huggingface_hub==0.26.5 accelerate==1.2.1 safetensors==0.4.5 \
        gguf==0.10.0 sentencepiece==0.2.0 Jinja2==3.1.4 MarkupSafe==2.1.5
    "$env/bin/pip" install --quiet packaging pyyaml tqdm regex requests filelock psutil fsspec
fi
