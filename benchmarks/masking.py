"""Benchmark: the seed's attention mask versus the key mask, trained on the synthetic set (chapter 6).

    .venv/bin/python benchmarks/masking.py [--seed 0 1 2] [--epochs N] [--set key=value ...]

For each training seed, `book.masking_comparison` trains the preset's settings twice, with
attention_mask="seed" (the random frame drop at inference on, as the original) and "keys", all
else equal, and scores both on the held-out participants: the seed mask with the frame drop at
inference on and off, the key mask. With several seeds the mean, min and max per variant follow.
Each variant is a run folder of its own under <artifacts>/runs/, reused when its settings and data
are unchanged.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import gislr_utils  # noqa: F401  (silences TensorFlow first)
from gislr_utils import book
from train_classroom import _parse_set  # the same --set KEY=VALUE parser


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="classroom")
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="training seed(s)")
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data set")
    ap.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    ap.add_argument("--artifacts-dir", type=Path, default=None, help="default: config.default_artifacts_dir()")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of config.RunConfig")
    args = ap.parse_args(argv)
    ctx = book.setup(None, args.artifacts_dir, args.preset, args.data_seed, **_parse_set(args.set))
    tables = []
    for seed in args.seed:
        t0 = time.perf_counter()
        table = book.masking_comparison(ctx, seeds=(seed,), epochs=args.epochs, verbose=0)
        print(f"training seed {seed} ({time.perf_counter() - t0:.1f}s):")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    if len(args.seed) > 1:
        mean = (table.groupby(["attention_mask", "frame_drop_at_inference"], sort=False)
                [["accuracy", "top5", "macro_f1"]].agg(["mean", "min", "max"]))
        print(f"over training seeds {args.seed}:")
        print(mean.to_string(float_format=lambda v: f"{v:.4f}"))
    return table


if __name__ == "__main__":
    main()
