"""Synthetic data set: generation time, reading speed and (optionally) a learnability baseline.

Generates a synthetic GISLR set (default size: `synthetic.DEFAULT_SIZE`, 25 signs x 20
participants x 3 clips = 1,500 clips) into a temporary directory and reports wall time, CPU time
(all threads), size on disk, clip lengths and the dominant-hand split; then reads every file with
`dataset.load_frames` and `dataset.validate_file` (files per second). With `--baseline`, the set
is preprocessed (`preprocessing.prepare_dataset`), split by participant as in training
(`training.split_by_participant`) and a logistic regression on the x, y of 8 time windows is
fitted: its held-out accuracy and most confused sign pairs say how hard the synthetic signs are
(the transformer should beat it).

Run: `python benchmarks/synthetic.py [--seed 0] [--n-participants 20] [--baseline] [--keep DIR]`.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import gislr_utils  # noqa: F401
from gislr_utils import config, dataset, synthetic


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def baseline(data_dir: Path, work: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from gislr_utils.preprocessing import prepare_dataset
    from gislr_utils.training import split_by_participant

    prepared = prepare_dataset(data_dir, work / "artifacts", progress=False)
    x = prepared.X[..., :2]                                      # [n, 64, 66, 2]
    feats = x.reshape(len(x), 8, 8, -1).mean(axis=2).reshape(len(x), -1)
    tr, va = split_by_participant(prepared.participant_id)
    scaler = StandardScaler().fit(feats[tr])
    t0 = time.perf_counter()
    clf = LogisticRegression(max_iter=2000, C=0.5).fit(scaler.transform(feats[tr]), prepared.y[tr])
    pred = clf.predict(scaler.transform(feats[va]))
    acc = float((pred == prepared.y[va]).mean())
    print(f"baseline (logistic regression, 8 windows x 66 landmarks x (x, y)): held-out "
          f"participants {sorted(set(prepared.participant_id[va].tolist()))}: accuracy {acc:.3f} "
          f"on {len(va)} clips (train {len(tr)}; fit {time.perf_counter() - t0:.1f} s)")
    names = np.array([config.INDEX_TO_SIGN[i] for i in range(len(config.INDEX_TO_SIGN))])
    pairs = pd.Series(list(zip(names[prepared.y[va]], names[pred])))
    wrong = pairs[prepared.y[va] != pred].value_counts().head(8)
    print("most confused (true, predicted):", ", ".join(f"{a}->{b} x{n}" for (a, b), n in wrong.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-signs", type=int, default=synthetic.DEFAULT_SIZE["n_signs"])
    ap.add_argument("--n-participants", type=int, default=synthetic.DEFAULT_SIZE["n_participants"])
    ap.add_argument("--clips-per-sign", type=int, default=synthetic.DEFAULT_SIZE["clips_per_sign"])
    ap.add_argument("--baseline", action="store_true", help="fit the logistic-regression baseline")
    ap.add_argument("--keep", type=Path, help="generate into this (empty) directory and keep it")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gislr_synth_bench_"))
    out = args.keep or work / "data"
    try:
        c0, t0 = cpu_seconds(), time.perf_counter()
        synthetic.generate(out, seed=args.seed, n_signs=args.n_signs,
                           n_participants=args.n_participants, clips_per_sign=args.clips_per_sign)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        clips = dataset.read_clips(out)
        size = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 2 ** 20
        print(f"generated {len(clips)} clips ({args.n_signs} signs x {args.n_participants} "
              f"participants x {args.clips_per_sign}) in {wall:.1f} s wall, {cpu:.1f} s CPU; "
              f"{size:.0f} MiB of parquet")

        t0 = time.perf_counter()
        summary = dataset.clip_summary(clips)
        read = time.perf_counter() - t0
        n = summary["n_frames"]
        print(f"clip lengths: median {n.median():.0f}, mean {n.mean():.1f}, max {n.max()}, "
              f"> 64: {(n > 64).mean():.1%}, > 100: {(n > 100).mean():.1%}; "
              f"dominant hand {summary['dominant'].value_counts().to_dict()}; "
              f"clips without any hand {int(summary['no_hand'].sum())}")
        print(f"load_frames (+ hand counts): {len(clips) / read:.0f} files/s")
        t0 = time.perf_counter()
        for path in clips["path"]:
            dataset.validate_file(path)
        print(f"validate_file: {len(clips) / (time.perf_counter() - t0):.0f} files/s")
        if args.baseline:
            baseline(out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
