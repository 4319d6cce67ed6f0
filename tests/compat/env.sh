#!/bin/sh
# A Python environment for `make compat` (tests/compat/run.py): Debian's
# torch 1.13 (python3-torch) seen from a venv that adds one PEFT version and
# the transformers it works with, plus the gguf package (the tiny Llama
# converted to GGUF). Every package is pinned and installed without its
# dependencies, so nothing replaces Debian's torch or numpy. A venv that
# already imports them all is reused as it is.
#   tests/compat/env.sh DIR VERSION      VERSION: 0.6.2 or 0.21.2
#   tests/compat/env.sh DIR gguf PIP     only the gguf package, into DIR by
#                                        PIP (pip install --target), for
#                                        venvs made elsewhere (PYTHONPATH=DIR)
set -eu
if [ $# -lt 2 ]; then
    echo "usage: tests/compat/env.sh DIR VERSION (0.6.2 or 0.21.2) | DIR gguf PIP" >&2
    exit 2
fi
env=$1
version=$2
gguf="gguf==0.10.0 sentencepiece==0.2.0"
case $version in
gguf)
    if ! PYTHONPATH=$env "${3%/pip}/python" -c "import gguf" 2>/dev/null; then
        # shellcheck disable=SC2086 # the pins are words
        "$3" install --quiet --disable-pip-version-check --no-deps --target "$env" $gguf
    fi
    exit 0 ;;
0.6.2)
    pins="peft==0.6.2 transformers==4.35.2 tokenizers==0.15.0 huggingface_hub==0.19.4
          accelerate==0.24.1 safetensors==0.4.1 Jinja2==3.1.2 MarkupSafe==2.1.3" ;;
0.21.2)
    pins="peft==0.21.2 transformers==4.49.0 tokenizers==0.21.0 huggingface_hub==0.27.1
          accelerate==1.2.1 safetensors==0.4.5 Jinja2==3.1.4 MarkupSafe==2.1.5" ;;
*)
    echo "tests/compat/env.sh: PEFT $version is not one the suite knows (0.6.2 or 0.21.2)" >&2
    exit 2 ;;
esac
# Pure-Python dependencies Debian's python3 lacks; their versions are those
# both PEFT versions were checked with.
common="$gguf packaging==26.4 regex==2026.11.19 tqdm==4.70.1 filelock==4.3.1
        fsspec==2026.9.0"
check="import peft, transformers, safetensors, gguf, yaml, requests, psutil
assert peft.__version__ == '$version', peft.__version__"
if [ -x "$env/bin/python" ] && "$env/bin/python" -c "$check" 2>/dev/null; then
    exit 0
fi
if [ ! -x "$env/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$env"
fi
# shellcheck disable=SC2086 # the pins are words
"$env/bin/pip" install --quiet --disable-pip-version-check --no-deps $pins $common
if ! "$env/bin/python" -c "$check"; then
    echo "tests/compat/env.sh: $env does not import PEFT $version and its packages" >&2
    exit 1
fi
