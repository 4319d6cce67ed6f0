#!/usr/bin/python3
"""Writes the instruction-tuning example's data: chat conversations in which
the assistant answers sums of two two-digit numbers in one fixed form,
"<a> plus <b> is <sum>.", so that the change in behaviour is easy to see
(SmolLM2-135M-Instruct answers such questions at length, and often wrongly).

    tools/instruct/make_pairs.py OUTDIR [--train 400] [--seed 7]

Writes OUTDIR/train.jsonl ({"messages": [user, assistant]} lines) and
OUTDIR/prompts.txt (held-out questions, one per line, none of them in the
training data). Standard library only; the same seed gives the same bytes.
"""
import argparse
import json
import os
import random

FORMS = ["What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}.",
         "How much is {a} + {b}?", "Compute {a} + {b}.", "{a} + {b} = ?"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("outdir")
    p.add_argument("--train", type=int, default=400)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    rng = random.Random(args.seed)
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    rng.shuffle(pairs)
    held_out, train = pairs[:args.prompts], pairs[args.prompts:args.prompts + args.train]
    os.makedirs(args.outdir, exist_ok=True)
    with open(os.path.join(args.outdir, "train.jsonl"), "w") as f:
        for a, b in train:
            question = rng.choice(FORMS).format(a=a, b=b)
            answer = "%d plus %d is %d." % (a, b, a + b)
            f.write(json.dumps({"messages": [{"role": "user", "content": question},
                                             {"role": "assistant", "content": answer}]}) + "\n")
    with open(os.path.join(args.outdir, "prompts.txt"), "w") as f:
        for i, (a, b) in enumerate(held_out):
            f.write(FORMS[i % len(FORMS)].format(a=a, b=b) + "\n")
    print("%d conversations in %s/train.jsonl, %d held-out questions in %s/prompts.txt"
          % (len(train), args.outdir, len(held_out), args.outdir))


if __name__ == "__main__":
    main()
