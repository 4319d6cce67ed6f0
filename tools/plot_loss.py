#!/usr/bin/python3
"""Plots the loss curve `clora train --log` writes (phase,step,loss,lr,
accuracy) as a PNG: training loss per step and validation loss at each
evaluation. Needs matplotlib (Debian: python3-matplotlib).

    tools/plot_loss.py LOSS.csv OUT.png [TITLE]
"""
import csv
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: plot_loss.py LOSS.csv OUT.png [TITLE]")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_loss.py: matplotlib is not installed (apt-get install python3-matplotlib)")
    curves = {}
    with open(sys.argv[1], newline="") as f:
        for row in csv.DictReader(f):
            curves.setdefault(row["phase"], []).append((int(row["step"]), float(row["loss"])))
    if not curves:
        sys.exit("plot_loss.py: %s has no rows" % sys.argv[1])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for phase, points in curves.items():
        steps, losses = zip(*points)
        label = {"train": "training loss", "val": "validation loss"}.get(phase, phase)
        ax.plot(steps, losses, marker="o" if phase == "val" else None, label=label,
                linewidth=1.0 if phase == "train" else 1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if len(sys.argv) > 3:
        ax.set_title(sys.argv[3])
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    print("wrote %s" % sys.argv[2])


if __name__ == "__main__":
    main()
