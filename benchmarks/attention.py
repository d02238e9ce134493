"""Training throughput of the two attention formulations (Chapter 3), seed preset, on CPU.

"matmul": q, k, v as one Dense(units) each, heads by reshape/transpose, batched tf.matmul.
"per_head": the seed's code, a Dense(depth) per head for q, k and v, 8 small attentions, concat.
Same parameters, same function (tests/test_model.py checks it). Each model is compiled as the
training chapter does (AdamW, clipnorm 1.0, label-smoothed cross-entropy) and trained with
`train_on_batch` on one random batch; the two are timed in alternating rounds after a warm-up,
so that load from other processes hits both alike. Reports samples/s (median step time).

What to expect on a CPU: both formulations do the same arithmetic. Per clip and block the q/k/v/o
projections are 4 x 64 x 512 x 512 = 67M multiply-adds in either form, the MLP another 67M, and
the attention products themselves (q k^T and weights @ v) only 2 x 64 x 64 x 512 = 4.2M; with
the embedding (~61M) a forward pass is ~340M multiply-adds, ~1% of it in the part that the
formulations compute differently. A CPU step at batch 64 is bound by the big matrix products,
so the per-head form's extra small ops (8 x 3 Dense calls, 8 attentions, concat, and their
gradients) cost little: measured 1.0-1.13x at batch 64, ~1.2x at batch 1 on 2 busy cores.
XLA (--jit) was slower on this CPU for both.

    python benchmarks/attention.py [--batch 64] [--steps 6] [--warmup 2] [--jit] [--preset seed]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import gislr_utils  # noqa: F401
from gislr_utils._tf import keras, tf
from gislr_utils.model import build_model


def make_model(preset, impl, jit):
    keras.utils.set_random_seed(0)
    model = build_model(preset, attention_impl=impl)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-5, clipnorm=1.0),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.25),
                  jit_compile=jit)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per formulation")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--jit", action="store_true", help="compile with XLA (jit_compile=True)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 0.2, (args.batch, 64, 66, 3)).astype("float32")
    idx = np.tile(np.arange(64, dtype="float32"), (args.batch, 1))
    for i, n in enumerate(rng.integers(8, 65, args.batch)):   # clips of 8-64 frames
        idx[i, n:] = -1.0
        x[i, n:] = 0.0
    y = keras.utils.to_categorical(rng.integers(0, 250, args.batch), 250)

    impls = ("matmul", "per_head")
    models = {impl: make_model(args.preset, impl, args.jit) for impl in impls}
    for impl in impls:
        for _ in range(args.warmup):
            models[impl].train_on_batch([x, idx], y)
    times = {impl: [] for impl in impls}
    for _ in range(args.steps):
        for impl in impls:
            t0 = time.perf_counter()
            models[impl].train_on_batch([x, idx], y)
            times[impl].append(time.perf_counter() - t0)

    print(f"preset={args.preset} batch={args.batch} steps={args.steps} warmup={args.warmup} "
          f"jit_compile={args.jit} cpu_count={os.cpu_count()} tf={tf.__version__} "
          f"keras={keras.__version__} params={models['matmul'].count_params():,}")
    rate = {}
    for impl in impls:
        med = float(np.median(times[impl]))
        rate[impl] = args.batch / med
        print(f"{impl:9s} median step {med * 1e3:8.1f} ms   {rate[impl]:7.1f} samples/s   "
              f"(min {min(times[impl]) * 1e3:.1f} ms, max {max(times[impl]) * 1e3:.1f} ms)")
    print(f"speed-up matmul / per_head: {rate['matmul'] / rate['per_head']:.2f}x")
    return rate


if __name__ == "__main__":
    main()
