#!/usr/bin/env python3
"""The side-by-side table of tools/spam/run_spam.sh, from the files it left
in WORK_DIR (a missing one leaves its cells as "-"):

    clora.json         `clora train --json`: trainable_params, accuracy
                       {before, after} x {train, val, test}, ms_per_step,
                       tokens_per_s, peak_device_bytes, steps
    peft.json          tools/spam/peft_spam.py's training run (same keys,
                       peak_rss_bytes for the device memory)
    peft_adapter.json  peft_spam.py --adapter: clora's adapter in PyTorch
    clora_time.txt     `/usr/bin/time -v` of each run: peak RSS, wall time
    peft_time.txt

with the book's figures beside (Build a Large Language Model (From
Scratch), appendix E: GPT-2 small, 5 epochs).

    table.py WORK_DIR
"""
import json
import os
import sys

BOOK = {
    "trainable": "2,666,528",
    "after": {"train": "99.81% (100%)", "val": "97.99% (96.64%)", "test": "96.67% (97.33%)"},
    "wall": "2.16 min (12.1)",
}
BOOK_NOTE = ("book: GPT-2 small (124M), 5 epochs, 2.16 min on an Apple M4 Pro GPU; "
             "in brackets the printed edition's,\n12.1 min on an M1 CPU.")
SPLITS = ("train", "val", "test")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def load_time(path):
    """Peak RSS (bytes) and wall time (s) from `/usr/bin/time -v` output."""
    found = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.strip().rpartition(": ")
                if name == "Maximum resident set size (kbytes)":
                    found["rss"] = int(value) * 1024
                elif name.startswith("Elapsed (wall clock) time"):
                    seconds = 0.0
                    for part in value.split(":"):
                        seconds = seconds * 60 + float(part)
                    found["wall"] = seconds
    except (OSError, ValueError):
        pass
    return found


def dig(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def percent(x):
    return "-" if x is None else "%.2f%%" % (100 * x)


def count(x):
    return "-" if x is None else format(int(x), ",")


def number(x, fmt):
    return "-" if x is None else fmt % x


def mib(x):
    return "-" if x is None else "%.0f MiB" % (x / 2**20)


def minutes(x):
    return "-" if x is None else "%.2f min" % (x / 60)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: table.py WORK_DIR")
    work = sys.argv[1]
    clora = load_json(os.path.join(work, "clora.json"))
    peft = load_json(os.path.join(work, "peft.json"))
    adapter = load_json(os.path.join(work, "peft_adapter.json"))
    clora_time = load_time(os.path.join(work, "clora_time.txt"))
    peft_time = load_time(os.path.join(work, "peft_time.txt"))

    rows = [("trainable parameters", count(clora.get("trainable_params")),
             count(peft.get("trainable_params")), "", BOOK["trainable"])]
    for when in ("before", "after"):
        for split in SPLITS:
            rows.append(("accuracy %s, %s" % (when, split),
                         percent(dig(clora, "accuracy", when, split)),
                         percent(dig(peft, "accuracy", when, split)),
                         percent(dig(adapter, "accuracy", "adapter", split)) if when == "after"
                         else "",
                         BOOK["after"][split] if when == "after" else ""))
    rows += [
        ("steps", count(clora.get("steps")), count(peft.get("steps")), "", ""),
        ("ms per step", number(clora.get("ms_per_step"), "%.0f"),
         number(peft.get("ms_per_step"), "%.0f"), "", ""),
        ("tokens per s", number(clora.get("tokens_per_s"), "%.0f"),
         number(peft.get("tokens_per_s"), "%.0f"), "", ""),
        ("peak device memory", mib(clora.get("peak_device_bytes")), "(host)", "", ""),
        ("peak RSS", mib(clora_time.get("rss")), mib(peft_time.get("rss")),
         mib(adapter.get("peak_rss_bytes")), ""),
        ("wall time", minutes(clora_time.get("wall")), minutes(peft_time.get("wall")),
         minutes(adapter.get("wall_s")), BOOK["wall"]),
    ]
    header = ("", "clora", "PyTorch + PEFT", "clora's adapter", "book")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print("clora's adapter: clora's trained adapter loaded with PEFT and evaluated in PyTorch.")
    print(BOOK_NOTE)


if __name__ == "__main__":
    main()
