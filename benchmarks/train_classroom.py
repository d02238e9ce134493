"""Benchmark: train the `classroom` preset on the default synthetic set; wall time and held-out accuracy.

    python benchmarks/train_classroom.py [--seed 0] [--epochs N] [--set units=64 --set ...] [--strategy one]

Generates (once) the synthetic GISLR set and its prepared arrays under --artifacts-dir, trains from
scratch (`training.train` with ``restart=True``: no reuse, no resume) into --out and prints the training
wall time and CPU time (this process, all threads: less sensitive to other load than wall time), the
time in `fit` (the epochs' seconds) and the metrics of the kept model on the held-out test participants.
The classroom preset should train in well under 2 minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import ast
import json
import resource
import time
from pathlib import Path

import gislr_utils  # noqa: F401  (silences TensorFlow first)
from gislr_utils import config, evaluation, training
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="classroom", choices=sorted(config.PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data set")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--strategy", default="one", choices=training.STRATEGIES)
    ap.add_argument("--artifacts-dir", type=Path, default=config.default_artifacts_dir())
    ap.add_argument("--out", type=Path, default=None, help="the run folder (default <artifacts>/bench_train)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of config.RunConfig")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    cfg = config.resolve(args.preset, args.seed, epochs=args.epochs, **_parse_set(args.set))

    t0 = time.perf_counter()
    data_dir = ensure_data_dir(None, args.artifacts_dir, seed=args.data_seed)
    prepared = prepare_dataset(data_dir, args.artifacts_dir, progress=False)
    print(f"data: {len(prepared.y)} clips, {len(set(prepared.participant_id))} participants, "
          f"{len(set(prepared.y))} signs ({time.perf_counter() - t0:.1f}s to generate/prepare or load)")

    out = args.out or args.artifacts_dir / "bench_train"
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    res = training.train(prepared, cfg, out, restart=True, strategy=args.strategy, verbose=0 if args.quiet else 1)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    test = res.rows["test"]
    ev = evaluation.evaluate(res.model, prepared.X[test], prepared.idxs[test], prepared.y[test],
                             participant_id=prepared.participant_id[test])
    m = ev.metrics
    summary = {"preset": cfg.preset, "overrides": cfg.overrides(), "seed": cfg.seed, "strategy": args.strategy,
               "epochs": cfg.epochs, "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
               "fit_s": round(res.train_seconds, 1), "kept_epoch": res.kept_epoch,
               "params": int(res.model.count_params()),
               **{k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}}
    print(json.dumps(summary))
    print(f"{cfg.preset} training: {wall:.1f}s wall ({res.train_seconds:.1f}s in fit, {cpu:.0f}s CPU), "
          f"held-out accuracy {m['accuracy']:.3f}, top-5 {m['top5']:.3f}, top-10 {m['top10']:.3f}, "
          f"macro F1 {m['macro_f1']:.3f} on {m['n_val']} clips")
    print(ev.per_participant.to_string(index=False))
    return summary


if __name__ == "__main__":
    main()
