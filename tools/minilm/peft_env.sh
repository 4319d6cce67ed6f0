#!/bin/sh
# A Python environment for tools/minilm/peft_compare.py and the golden-data
# scripts: Debian's torch 1.13 (python3-torch) seen from a venv that adds
# PEFT and transformers at versions that work with it.
#   tools/minilm/peft_env.sh DIR
set -eu
env=$1
if [ ! -x "$env/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$env"
fi
if ! "$env/bin/python" -c "import peft, transformers, safetensors, jinja2" 2>/dev/null; then
    "$env/bin/pip" install --quiet --no-deps peft==0.6.2 transformers==4.35.2 \
        tokenizers==0.15.0 huggingface_hub==0.19.4 accelerate==0.24.1 safetensors==0.4.1 \
        Jinja2==3.1.2 MarkupSafe==2.1.3
    "$env/bin/pip" install --quiet packaging pyyaml tqdm regex requests filelock psutil fsspec
fi
