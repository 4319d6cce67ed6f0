#!/usr/bin/env python3
"""The one summary line of `make compat`, from the results tests/compat/run.py
wrote for each PEFT version; exits 1 when a case failed or a version's
results are missing (its run stopped before the end).

    python3 tests/compat/summary.py RESULTS.json...
"""
import json
import sys


def main(paths):
    parts, passed, ran, skipped, broken = [], 0, 0, 0, []
    for path in paths:
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            broken.append("%s: %s" % (path, e))
            continue
        parts.append("PEFT %s: %d/%d" % (r["peft"], r["passed"], r["ran"]))
        passed += r["passed"]
        ran += r["ran"]
        skipped += r["skipped"]
    line = "compat: %d/%d cases passed (%s), %d skipped" % (passed, ran, ", ".join(parts), skipped)
    if broken:
        line += "; no results from %s" % "; ".join(broken)
    print(line)
    return 0 if paths and not broken and passed == ran else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
