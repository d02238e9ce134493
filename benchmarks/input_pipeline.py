"""Input pipeline against training step: samples/s of the seed sampler and of the seed preset's step.

    python benchmarks/input_pipeline.py [--artifacts-dir DIR] [--data-dir DIR] [--seconds 10]
                                        [--train-steps 3]

A GPU is kept busy only if batches come at least as fast as the training step consumes them.
This measures, on the prepared set of `--data-dir` (default: the book's synthetic set):

* each input pipeline of `pipelines()` (`training.BalancedSignBatches`, the seed's
  ``get_train_batch_all_signs``, and `training.batch_dataset`, the tf.data pipeline that
  `training.train` uses, which prefetches batches) drawing batches of the seed preset (4 clips of every sign) for
  `--seconds`, once from the memory-mapped arrays (``prepare_dataset(mmap=True)``) and once from
  the arrays in RAM, in samples/s;
* the seed preset's training step on this machine (`model.train_on_batch`, the first
  step untimed), in samples/s;
* the share of a step that drawing its batch takes when the two run one after the other, as
  `model.fit` on the plain iterator does (a prefetching pipeline overlaps them).

`benchmarks/full_scale.py` calls `measure` on the full-size synthetic set.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import gislr_utils  # noqa: F401  (silences TensorFlow first)
from gislr_utils import preprocessing, statistics, training
from gislr_utils.config import DEFAULT_ARTIFACTS_DIR, PRESETS


def pipelines() -> dict:
    """The input pipelines measured: name -> function(sampler) returning an iterator of
    (inputs, labels) batches drawn by that `training.BalancedSignBatches`."""
    out = {"BalancedSignBatches": iter}
    # what training.train feeds the model with: tf.data, drawn ahead of the step
    out["training.batch_dataset (prefetch 2)"] = lambda s: iter(training.batch_dataset(s, prefetch=2))
    return out


def batches_per_second(it, seconds: float) -> tuple[float, int]:
    """Batches drawn per second from iterator `it` during about `seconds` (after one batch)."""
    next(it)
    n, t0 = 0, time.perf_counter()
    while True:
        next(it)
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed, n


def step_samples_per_s(prep, rows, stats, steps: int, seed: int = 0) -> tuple[float, int]:
    """Samples/s of the seed preset's training step (`train_on_batch`, first step untimed)."""
    from gislr_utils._tf import keras
    from gislr_utils.model import build_model

    cfg, _ = training.resolve_settings("seed")
    keras.utils.set_random_seed(seed)
    model = build_model("seed", stats)
    training.compile_model(model, cfg)
    sampler = training.BalancedSignBatches(prep.X, prep.idxs, prep.y, n=cfg["batch_all_signs_n"],
                                           rows=rows, seed=seed, num_classes=cfg["num_classes"])
    it = iter(sampler)
    model.train_on_batch(*next(it))                     # tracing
    times = []
    for _ in range(steps):
        x, y = next(it)
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    return sampler.batch_size / float(np.median(times)), sampler.batch_size


def measure(prep, rows=None, seconds: float = 10.0, train_steps: int = 3,
            step_rate: float | None = None, seed: int = 0) -> dict:
    """Samples/s of each pipeline (memory map and RAM) and of the training step; see the module
    docstring. `prep` is a `PreparedData` (memory-mapped or not); `rows` the training rows
    (default: the participant split's); `step_rate` a training step's samples/s measured
    elsewhere (then no model is built here)."""
    if rows is None:
        rows, _ = training.split_by_participant(prep.participant_id)
    n = PRESETS["seed"]["batch_all_signs_n"]
    out = {}
    sources = {"mmap": (prep.X, prep.idxs)}
    if isinstance(prep.X, np.memmap):
        sources["ram"] = (np.array(prep.X), np.array(prep.idxs))
    for source, (X, idxs) in sources.items():
        for name, make in pipelines().items():
            sampler = training.BalancedSignBatches(X, idxs, prep.y, n=n, rows=rows, seed=seed)
            rate, _ = batches_per_second(make(sampler), seconds / len(sources))
            out[f"{name} ({source}) samples_per_s"] = rate * sampler.batch_size
        out["batch_size"] = sampler.batch_size
    del sources
    if step_rate is None:
        stats = statistics.compute_stats(prep.X, rows=rows)
        step_rate, _ = step_samples_per_s(prep, rows, stats, train_steps, seed)
    out["training step samples_per_s"] = step_rate
    for key in [k for k in out if k.endswith("samples_per_s") and not k.startswith("training")]:
        out[key.replace("samples_per_s", "share_of_step")] = step_rate / out[key]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts-dir", type=Path, default=DEFAULT_ARTIFACTS_DIR)
    ap.add_argument("--data-dir", type=Path, default=None, help="default: the synthetic set")
    ap.add_argument("--seconds", type=float, default=10.0, help="per pipeline")
    ap.add_argument("--train-steps", type=int, default=3)
    args = ap.parse_args(argv)
    from gislr_utils.synthetic import ensure_data_dir

    data_dir = ensure_data_dir(args.data_dir, args.artifacts_dir)
    prep = preprocessing.prepare_dataset(data_dir, args.artifacts_dir, progress=False, mmap=True)
    print(f"{len(prep.y)} clips, {len(np.unique(prep.y))} signs; seed preset batches")
    res = measure(prep, seconds=args.seconds, train_steps=args.train_steps)
    print(format_results(res))


def format_results(res: dict) -> str:
    lines = [f"batch: {res['batch_size']} clips (4 of every sign)"]
    for k, v in res.items():
        if k.endswith("samples_per_s"):
            lines.append(f"{k[:-len(' samples_per_s')]:45s} {v:10,.0f} samples/s")
    for k, v in res.items():
        if k.endswith("share_of_step"):
            lines.append(f"drawing a batch, {k[:-len(' share_of_step')]}: "
                         f"{100 * v:.2f}% of a training step's time")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
