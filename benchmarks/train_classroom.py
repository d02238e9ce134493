"""Benchmark: chapter 4's classroom run on the default synthetic set; seconds per epoch and held-out accuracy.

    python benchmarks/train_classroom.py [--seed 0] [--epochs N] [--set jit_compile=False --set ...]
                                         [--strategy one] [--artifacts-dir DIR] [--out DIR]

Generates (once) the synthetic GISLR set of the seed, as chapter 4 does with ``data_dir=None``
(``synthetic.ensure_data_dir``), and its prepared arrays under ``--artifacts-dir``, then trains
the preset's run with chapter 4's recipe, `recipe.train_run`, into a fresh folder (``--out``,
default ``<artifacts>/bench_train``, deleted first: nothing is reused or resumed). Prints the
recipe's epoch lines, the seconds of every epoch (the first includes tracing the step and, with
``jit_compile``, XLA's compilation), the wall and CPU time of the whole call (CPU time of this
process, all threads: less sensitive to other load than wall time) and the load average before
and after; then the final model's accuracy on the held-out test participants, computed here
from `evaluation.predict` with NumPy and scikit-learn (top-1, top-5, macro F1 over the signs
present, per participant). ``--set KEY=VALUE`` changes a setting of `config.RunConfig` as a
chapter parameter would (``--set jit_compile=False``: the step without XLA). Quick check:
``--epochs 1``.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, top_k_accuracy_score

import gislr_utils  # noqa: F401  (silences TensorFlow first)
from gislr_utils import config, evaluation, recipe, training
from gislr_utils.preprocessing import prepare_dataset
from gislr_utils.synthetic import ensure_data_dir


def _parse_set(items):
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def held_out_scores(run, prepared) -> tuple[dict, pd.DataFrame]:
    """Accuracy, top-5 and macro F1 of the run's final model on its test participants, and the
    accuracy of each of them."""
    test = run.split["test"]
    if test.size == 0:
        raise SystemExit("the data set has one participant: no held-out clips to score")
    y = np.asarray(prepared.y)[test]
    probs = evaluation.predict(run.model, prepared.X[test], prepared.idxs[test], seed=run.cfg.seed)
    pred = probs.argmax(axis=1)
    metrics = {"accuracy": float(np.mean(pred == y)),
               "top5": float(top_k_accuracy_score(y, probs, k=5, labels=np.arange(probs.shape[1]))),
               "macro_f1": float(f1_score(y, pred, labels=np.unique(y), average="macro")),
               "n_test": int(test.size)}
    pid = np.asarray(prepared.participant_id)[test]
    per = (pd.DataFrame({"participant": pid, "right": pred == y}).groupby("participant")["right"]
           .agg(clips="size", accuracy="mean").reset_index())
    return metrics, per


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="classroom", choices=sorted(config.PRESETS))
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (and, as in chapter 4, the data's)")
    ap.add_argument("--data-seed", type=int, default=None, help="seed of the synthetic set (default: --seed)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--strategy", default="one", choices=training.STRATEGIES)
    ap.add_argument("--artifacts-dir", type=Path, default=config.default_artifacts_dir())
    ap.add_argument("--out", type=Path, default=None, help="the run folder (default <artifacts>/bench_train)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of config.RunConfig")
    ap.add_argument("--quiet", action="store_true", help="without the recipe's epoch lines")
    args = ap.parse_args(argv)
    cfg = config.resolve(args.preset, args.seed, epochs=args.epochs, **_parse_set(args.set))
    data_seed = args.seed if args.data_seed is None else args.data_seed

    t0 = time.perf_counter()
    data_dir = ensure_data_dir(args.artifacts_dir, seed=data_seed)
    prepared = prepare_dataset(data_dir, args.artifacts_dir, progress=False, mmap=True)
    print(f"data: {len(prepared.y)} clips, {len(set(prepared.participant_id))} participants, "
          f"{len(set(prepared.y))} signs ({time.perf_counter() - t0:.1f}s to generate/prepare or load)")

    out = args.out or args.artifacts_dir / "bench_train"
    shutil.rmtree(out, ignore_errors=True)                 # a fresh folder: trained, not loaded
    load0 = os.getloadavg()
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    run = recipe.train_run(prepared, cfg, out, strategy=args.strategy, verbose=0 if args.quiet else 1)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    load1 = os.getloadavg()
    epoch_s = run.history["seconds"].to_numpy()
    metrics, per = held_out_scores(run, prepared)
    summary = {"preset": cfg.preset, "overrides": cfg.overrides(), "seed": cfg.seed, "strategy": args.strategy,
               "epochs": cfg.epochs, "jit_compile": cfg.jit_compile, "epoch_s": [round(s, 2) for s in epoch_s],
               "train_run_wall_s": round(wall, 1), "train_run_cpu_s": round(cpu, 1),
               "load_avg_before": [round(v, 2) for v in load0], "load_avg_after": [round(v, 2) for v in load1],
               "params": int(run.model.count_params()),
               **{k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}}
    print(json.dumps(summary))
    later = f", epochs 2-{len(epoch_s)}: median {np.median(epoch_s[1:]):.1f}s" if len(epoch_s) > 1 else ""
    print(f"{cfg.preset} run, {cfg.epochs} epochs, XLA {'on' if cfg.jit_compile else 'off'}: "
          f"epoch 1 {epoch_s[0]:.1f}s (traces the step{', XLA compiles' if cfg.jit_compile else ''}){later}; "
          f"epochs {epoch_s.sum():.1f}s in all, recipe.train_run {wall:.1f}s wall ({cpu:.0f}s CPU); "
          f"load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cores")
    print(f"held-out accuracy {metrics['accuracy']:.3f}, top-5 {metrics['top5']:.3f}, "
          f"macro F1 {metrics['macro_f1']:.3f} on {metrics['n_test']} clips")
    print(per.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return summary


if __name__ == "__main__":
    main()
