"""Time per training step of a preset on this machine, and the projected time of an epoch and a run.

Builds the preset's model (random statistics), compiles it as `training.train` does, and times
`--steps` training steps after `--warmup` steps on batches of `training.batch_dataset` (random
arrays of the real shape, one batch of ``n`` clips of each of the 250 signs). Prints samples/s,
the projected time of one epoch of the real data (80,229 training clips: 80 steps of 1,000) and
of the preset's epochs, and the training FLOPs per clip (3 x the forward pass of the Dense
layers and the attention products, counted from the model's shapes), which turns a GPU's
sustained FLOP/s into a projection for that GPU.

    python benchmarks/train_step.py --preset seed --n 1 --steps 3
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import gislr_utils  # noqa: F401
from gislr_utils import config, training
from gislr_utils._tf import keras

REAL_TRAIN_CLIPS = 80_229


def train_flops_per_clip(model, frames: int = 64) -> float:
    """3 x forward FLOPs of one clip: every Dense kernel once per frame, plus QK^T and AV."""
    macs = 0
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dense) and layer.built:
            macs += int(np.prod(layer.kernel.shape)) * frames
    cfg = model.get_layer("transformer")
    units = model.get_layer("transformer").blocks[0].mha.units
    macs += len(cfg.blocks) * 2 * frames * frames * units          # scores and weighted values
    return 3 * 2.0 * macs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="seed", choices=sorted(config.PRESETS))
    ap.add_argument("--n", type=int, default=1, help="clips of every sign in a batch (seed: 4)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mixed-precision", action="store_true")
    ap.add_argument("--jit-compile", action="store_true")
    args = ap.parse_args(argv)

    cfg, _ = training.resolve_settings(args.preset, batch_all_signs_n=args.n)
    rng = np.random.default_rng(0)
    n_clips = 250 * max(2, args.n)
    X = rng.random((n_clips, 64, 66, 3), dtype=np.float32)
    idxs = np.tile(np.arange(64, dtype=np.float32), (n_clips, 1))
    y = np.repeat(np.arange(250, dtype=np.int32), n_clips // 250)
    stats = {"mean": np.full((66, 2), 0.5, np.float32), "std": np.full((66, 2), 0.2, np.float32)}
    model = training._build(args.preset, stats, {}, cfg, args.mixed_precision, args.jit_compile)
    sampler = training.BalancedSignBatches(X, idxs, y, n=args.n, seed=0)
    it = iter(training.batch_dataset(sampler))
    model.make_train_function()
    step = model.train_function
    times = []
    for _ in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        logs = step(it)
        float(logs["loss"])
        times.append(time.perf_counter() - t0)
    t = float(np.median(times[args.warmup:]))
    rate = sampler.batch_size / t
    epoch = REAL_TRAIN_CLIPS / rate
    flops = train_flops_per_clip(model)
    out = {"preset": args.preset, "batch": sampler.batch_size, "mixed_precision": args.mixed_precision,
           "jit_compile": args.jit_compile, "cpu_count": os.cpu_count(),
           "load_avg": round(os.getloadavg()[0], 2), "seconds_per_step": round(t, 3),
           "samples_per_s": round(rate, 1), "epoch_s_real_data": round(epoch, 1),
           "run_h": round(epoch * cfg["epochs"] / 3600, 2),
           "train_gflop_per_clip": round(flops / 1e9, 3),
           "achieved_gflop_per_s": round(flops * rate / 1e9, 1),
           "train_tflop_per_epoch": round(flops * REAL_TRAIN_CLIPS / 1e12, 1)}
    print(json.dumps(out))
    for tflops in (4, 8, 16):
        print(f"a GPU sustaining {tflops} TFLOP/s: about {flops * REAL_TRAIN_CLIPS / (tflops * 1e12):.0f} s "
              f"an epoch of the real data")
    return out


if __name__ == "__main__":
    main()
