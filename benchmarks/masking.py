"""Benchmark: the seed's attention mask versus the key mask, trained on the synthetic set (chapter 6).

    .venv/bin/python benchmarks/masking.py [--seed 0 1 2] [--epochs N] [--set key=value ...]

Trains the preset twice per training seed (attention_mask="seed" and "keys", all else equal) via
`training.compare_masking` and prints held-out accuracy of each, and for the seed mode with the
random frame drop at inference on (the original) and off; with several seeds also the mean per
variant. Models are reused from <artifacts>/bench_masking/seed<k>/masking/<mode>/ when their
settings and data are unchanged.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import gislr_utils  # noqa: F401
from gislr_utils import training
from gislr_utils.config import DEFAULT_ARTIFACTS_DIR
from gislr_utils.preprocessing import prepare_dataset
from gislr_utils.synthetic import ensure_data_dir

from train_classroom import _parse_set  # same folder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="classroom")
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="training seed(s)")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--artifacts-dir", type=Path, default=DEFAULT_ARTIFACTS_DIR)
    ap.add_argument("--out", type=Path, default=None, help="default <artifacts>/bench_masking")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    data_dir = ensure_data_dir(None, args.artifacts_dir, seed=args.data_seed)
    prepared = prepare_dataset(data_dir, args.artifacts_dir)
    out = args.out or args.artifacts_dir / "bench_masking"
    tables = []
    for seed in args.seed:
        t0 = time.perf_counter()
        table = training.compare_masking(prepared, args.preset, seed, out / f"seed{seed}", epochs=args.epochs,
                                         verbose=0, **_parse_set(args.set))
        print(f"training seed {seed} ({time.perf_counter() - t0:.1f}s):")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        tables.append(table.assign(seed=seed))
    table = pd.concat(tables, ignore_index=True)
    if len(args.seed) > 1:
        mean = (table.groupby(["attention_mask", "frame_drop_at_inference"], sort=False)
                [["accuracy", "top5", "macro_f1"]].agg(["mean", "min", "max"]))
        print(f"over training seeds {args.seed}:")
        print(mean.to_string(float_format=lambda v: f"{v:.4f}"))
    return table


if __name__ == "__main__":
    main()
