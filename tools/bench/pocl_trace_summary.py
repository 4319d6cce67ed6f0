#!/usr/bin/python3
"""Sums PoCL's command trace by kernel name.

    CLORA_QUEUE_PROFILING=1 POCL_TRACING=text clora train ...
    tools/bench/pocl_trace_summary.py pocl_trace_events.log [--skip FRACTION] [--top N]

PoCL's text tracer writes one line per state change of each command
("TIME | EV ID n | DEV d | CQ q | KIND | STATE | ... | name=KERNEL"). This
prints, per kernel (or command kind for transfers and fills), the time from
"running" to "complete" summed over the run and the number of launches,
largest first. --skip leaves out the first FRACTION of commands (program
builds and warm-up).
"""
import argparse
import collections
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log")
    parser.add_argument("--skip", type=float, default=0.0,
                        help="fraction of commands to leave out at the start")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if not 0.0 <= args.skip < 1.0:
        sys.exit("--skip takes a fraction in [0, 1)")

    events = {}
    try:
        with open(args.log) as f:
            for line in f:
                fields = [x.strip() for x in line.split("|")]
                if len(fields) < 6 or not fields[0].isdigit():
                    continue
                event = events.setdefault(fields[1], {"kind": fields[4], "name": fields[-1]})
                event[fields[5]] = int(fields[0])
    except OSError as e:
        sys.exit(f"{args.log}: {e.strerror}")

    commands = []
    for e in events.values():
        if "running" in e and "complete" in e:
            name = e["name"][5:] if e["name"].startswith("name=") else e["kind"]
            commands.append((e["running"], e["complete"], name))
    if not commands:
        sys.exit(f"{args.log}: no timed commands (was the queue created with profiling on? "
                 "set CLORA_QUEUE_PROFILING=1)")
    if all(start == 0 for start, _, _ in commands):
        sys.exit(f"{args.log}: all timestamps are 0; set CLORA_QUEUE_PROFILING=1")
    commands.sort()
    commands = commands[int(len(commands) * args.skip):]
    total = collections.Counter()
    count = collections.Counter()
    for start, end, name in commands:
        total[name] += (end - start) / 1e6
        count[name] += 1
    span = (commands[-1][1] - commands[0][0]) / 1e6
    print(f"{len(commands)} commands over {span:.1f} ms, busy {sum(total.values()):.1f} ms")
    for name, ms in total.most_common(args.top):
        print(f"{ms:10.1f} ms {count[name]:7d}x  {name}")


if __name__ == "__main__":
    main()
