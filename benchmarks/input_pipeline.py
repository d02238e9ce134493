"""Does the input pipeline keep up with the training step? Samples/s of `training.BalancedSignBatches`.

    python benchmarks/input_pipeline.py [--data-dir DIR] [--seconds 10] [--step-rate SAMPLES_PER_S]

A device trains at full speed only if batches come at least as fast as its training step takes them.
Chapter 4's recipe (`recipe.train_run`) passes a `training.BalancedSignBatches` (a
`keras.utils.PyDataset`) to ``fit``; Keras reads it with one worker (the PyDataset's default)
through a ``tf.data`` generator with ``prefetch``, so that drawing the next batch
(``batches[step]``: its rows sampled, gathered from X and idxs, the one-hot labels) overlaps the
step, and the step waits only when drawing a batch takes longer than the step. On the prepared
set of ``--data-dir`` (default: the book's synthetic set) this draws the seed preset's batches (4
clips of every sign) with ``batches[step]`` for ``--seconds``, from the memory-mapped arrays
(what the chapters get from ``prepare_dataset(..., mmap=True)``) and from the arrays in RAM, and
compares its samples/s with the training step's: ``--step-rate`` (for instance what
``train_step.py`` printed on a GPU), else the seed preset's step on these batches on this
machine (`train_step.time_steps`). The share is the time drawing a batch takes against the
time of a step: below 100% the step does not wait (on two cores both share the CPU, so a draw
still takes that share of the CPU away from the step).

Quick check: ``--seconds 2 --steps 1``. `benchmarks/full_scale.py` calls `measure` on the
full-size synthetic set.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import gislr_utils  # noqa: F401  (silences TensorFlow first)
from gislr_utils import config, preprocessing, statistics, training


def samples_per_second(batches, seconds: float) -> float:
    """Samples/s that ``batches[step]`` delivers during about `seconds` (after one batch), epoch
    after epoch as ``fit`` asks for them."""
    batches[0]
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        batches.epoch, step = divmod(n, len(batches))
        batches[step]
        n += 1
    batches.epoch = 0
    return n * batches.batch_size / elapsed


def measure(prep, seconds: float = 10.0, step_rate: float | None = None, steps: int = 2, seed: int = 0) -> dict:
    """Samples/s of `BalancedSignBatches` (memory map, and RAM when `prep.X` is a memory map)
    and of the seed preset's training step (`step_rate`, else measured here), and the share of
    a step's time that drawing its batch takes."""
    import train_step

    cfg = config.resolve("seed", seed)
    rows = training.split_rows(prep, cfg)["train"]
    sources = {"memory map": prep} if isinstance(prep.X, np.memmap) else {}
    sources["RAM"] = SimpleNamespace(X=np.array(prep.X), idxs=np.array(prep.idxs), y=np.asarray(prep.y))
    out = {}
    for source, data in sources.items():
        batches = training.BalancedSignBatches(data, rows, cfg)
        out[f"batches ({source}) samples_per_s"] = samples_per_second(batches, seconds / len(sources))
    out["batch_size"] = batches.batch_size
    if step_rate is None:
        stats = statistics.compute_stats(prep.X, rows=rows)
        batches = training.BalancedSignBatches(prep, rows, cfg)
        step_rate = batches.batch_size / train_step.time_steps(cfg, batches, stats, steps=steps,
                                                               warmup=1)["step_s"]
    out["training step samples_per_s"] = step_rate
    for key in [k for k in out if k.startswith("batches")]:
        out[key.replace("samples_per_s", "share_of_step")] = step_rate / out[key]
    return out


def format_results(res: dict) -> str:
    lines = [f"batch: {res['batch_size']} clips (4 of every sign)"]
    lines += [f"{k[:-len(' samples_per_s')]:32s} {v:10,.0f} samples/s" for k, v in res.items()
              if k.endswith("samples_per_s")]
    lines += [f"drawing a batch ({k.split('(')[1].split(')')[0]}): {100 * v:.2g}% of a training step's time"
              + (" (the step waits for its batches)" if v > 1 else "")
              for k, v in res.items() if k.endswith("share_of_step")]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts-dir", type=Path, default=config.default_artifacts_dir())
    ap.add_argument("--data-dir", type=Path, default=None, help="default: the synthetic set")
    ap.add_argument("--seconds", type=float, default=10.0, help="of drawing, in all")
    ap.add_argument("--step-rate", type=float, default=None, help="the training step's samples/s (default: measured)")
    ap.add_argument("--steps", type=int, default=2, help="training steps timed (after one untimed)")
    args = ap.parse_args(argv)
    from gislr_utils.synthetic import ensure_data_dir

    data_dir = args.data_dir or ensure_data_dir(args.artifacts_dir)
    prep = preprocessing.prepare_dataset(data_dir, args.artifacts_dir, progress=False, mmap=True)
    print(f"{len(prep.y)} clips, {len(np.unique(prep.y))} signs; the seed preset's batches")
    print(format_results(measure(prep, args.seconds, args.step_rate, args.steps)))


if __name__ == "__main__":
    main()
