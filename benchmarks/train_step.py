"""Time of a training step of a preset, on one device or several, and the projected epoch and run.

Builds the preset's model (statistics mean 0.5, std 0.2) and compiles it as chapter 4's recipe
(`recipe.train_run`) does: `model.build_model` and `training.compile_model` in the scope of
`training.get_strategy(--strategy)`; ``--mixed-precision`` builds it under Keras'
"mixed_float16" policy (``mixed_precision=True``); XLA is the preset's ``jit_compile`` (on for
classroom, off for seed and improved) unless ``--jit-compile`` or ``--no-jit-compile`` says
otherwise. The data are random arrays of the real shape served by `training.BalancedSignBatches`
(the `keras.utils.PyDataset` that ``fit`` reads in the recipe): ``--n`` clips of each of the 250
signs a batch (default the preset's: 4 for seed, a batch of 1,000). It fits ``--warmup`` +
``--steps`` steps and times the ``--steps`` after the warm-up (the first step traces and
compiles); the device is synchronised (the loss read) only at the start and the end of the
timed steps. Prints the seconds a step (wall, and CPU time of this process), samples/s, the
projected epoch and run on the real data (80,229 training clips, ``80,229 // batch`` steps an
epoch, the preset's epochs; the seed preset validates nothing while it trains, so that is its
whole run) and the training FLOPs per clip (3 x the forward pass: every Dense kernel once a
frame, the classifier once a clip, q k^T and the weighted values of every block; 2 FLOPs a
multiply-add), which turns a device's sustained FLOP/s into a projection.

On a CPU (the book's Measurements appendix):

    python benchmarks/train_step.py --preset seed --steps 3
    python benchmarks/train_step.py --preset seed --steps 3 --jit-compile
    GISLR_CPU_REPLICAS=2 python benchmarks/train_step.py --preset seed --n 1 --strategy mirrored

(``GISLR_CPU_REPLICAS=2`` splits the CPU into two logical devices: a test of the multi-device
code; XLA is refused there.) Quick check: ``--preset classroom --n 1 --steps 2 --warmup 1``.
On a machine with GPUs (issue 18): the seed preset at its real batch size on one GPU and on all
of them ("mirrored"), each without and with mixed precision:

    python benchmarks/train_step.py --preset seed --strategy one --warmup 5 --steps 30
    python benchmarks/train_step.py --preset seed --strategy one --warmup 5 --steps 30 --mixed-precision
    python benchmarks/train_step.py --preset seed --strategy mirrored --warmup 5 --steps 30
    python benchmarks/train_step.py --preset seed --strategy mirrored --warmup 5 --steps 30 --mixed-precision
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from types import SimpleNamespace

import numpy as np

import gislr_utils  # noqa: F401  (silences TensorFlow first)
from gislr_utils import config, model, training
from gislr_utils._tf import keras, tf

REAL_TRAIN_CLIPS = 80_229


def cpu_seconds() -> float:
    """CPU time of this process (all threads), user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train_flops_per_clip(net, cfg) -> float:
    """3 x the forward FLOPs of one clip: every Dense kernel once a frame (the classifier once a
    clip), plus q k^T and the weighted values of every block."""
    T, macs = cfg.input_size, 0
    for w in net.trainable_weights:
        if w.path.endswith("kernel"):
            macs += int(np.prod(w.shape)) * (1 if w.path.startswith("classifier/") else T)
    macs += len(model.blocks(net)) * 2 * T * T * cfg.units
    return 3 * 2.0 * macs


class _Clock(keras.callbacks.Callback):
    """(wall, CPU) times at the end of step `warmup` and of the last step, the loss read there."""

    def __init__(self, warmup: int, steps: int):
        super().__init__()
        self.ends, self.marks = (warmup, warmup + steps), []

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 in self.ends:
            float(logs["loss"])                      # waits for the device
            self.marks.append((time.perf_counter(), cpu_seconds()))


def time_steps(cfg, batches, stats=None, strategy="one", steps=3, warmup=2,
               steps_per_epoch=None) -> dict:
    """Seconds a training step of `cfg`'s model on `batches` (a `training.BalancedSignBatches`
    of at least ``warmup + steps`` batches), built and compiled as chapter 4's recipe does; the
    mean of `steps` after `warmup` (>= 1) steps. `steps_per_epoch` (default ``len(batches)``)
    is what the model is built for (the improved preset's late dropout starts after a share of
    the run's steps). Returns step_s, step_cpu_s, replicas and the model."""
    warmup = max(1, warmup)
    if len(batches) < warmup + steps:
        raise ValueError(f"{len(batches)} batches an epoch, {warmup + steps} needed")
    distribution = training.get_strategy(strategy)
    with distribution.scope():
        net = model.build_model(cfg, stats, steps_per_epoch or len(batches))
        training.compile_model(net, cfg)
    clock = _Clock(warmup, steps)
    net.fit(batches, steps_per_epoch=warmup + steps, epochs=1, callbacks=[clock], shuffle=False,
            verbose=0)
    (t0, c0), (t1, c1) = clock.marks
    return {"step_s": (t1 - t0) / steps, "step_cpu_s": (c1 - c0) / steps,
            "replicas": distribution.num_replicas_in_sync, "model": net}


def random_batches(cfg, batches: int, seed: int = 0) -> training.BalancedSignBatches:
    """`training.BalancedSignBatches` of `batches` steps an epoch over ``batch_all_signs_n``
    random clips of the real shape (every frame valid) of each of the ``num_classes`` signs."""
    n, C = cfg.batch_all_signs_n, cfg.num_classes
    rng = np.random.default_rng(seed)
    data = SimpleNamespace(X=rng.random((C * n, cfg.input_size, 66, 3), dtype=np.float32),
                           idxs=np.tile(np.arange(cfg.input_size, dtype=np.float32), (C * n, 1)),
                           y=np.repeat(np.arange(C), n))
    return training.BalancedSignBatches(data, np.tile(np.arange(C * n), batches), cfg)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="seed", choices=sorted(config.PRESETS))
    ap.add_argument("--n", type=int, default=None, help="clips of every sign in a batch (default: the preset's)")
    ap.add_argument("--steps", type=int, default=3, help="steps timed")
    ap.add_argument("--warmup", type=int, default=2, help="steps not timed (the first traces)")
    ap.add_argument("--strategy", default="one", choices=training.STRATEGIES)
    ap.add_argument("--mixed-precision", action="store_true")
    ap.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                    help="XLA on (off with --no-jit-compile); default: the preset's")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        ap.error("--steps and --warmup must be >= 1")
    cfg = config.resolve(args.preset, batch_all_signs_n=args.n, mixed_precision=args.mixed_precision,
                         jit_compile=args.jit_compile)
    batches = random_batches(cfg, args.warmup + args.steps)
    n, C, B = cfg.batch_all_signs_n, cfg.num_classes, batches.batch_size
    steps = REAL_TRAIN_CLIPS // B
    stats = {"mean": np.full((66, 2), 0.5, np.float32), "std": np.full((66, 2), 0.2, np.float32)}
    load0 = os.getloadavg()
    r = time_steps(cfg, batches, stats, args.strategy, args.steps, args.warmup, steps)
    load1 = os.getloadavg()
    t = r["step_s"]
    rate, flops = B / t, train_flops_per_clip(r["model"], cfg)
    epoch = steps * t
    out = {"preset": cfg.preset, "batch": B, "strategy": args.strategy, "replicas": r["replicas"],
           "mixed_precision": cfg.mixed_precision, "jit_compile": cfg.jit_compile,
           "gpus": len(tf.config.list_physical_devices("GPU")), "cpu_count": os.cpu_count(),
           "load_avg_before": [round(v, 2) for v in load0], "load_avg_after": [round(v, 2) for v in load1],
           "steps_timed": args.steps, "params": int(r["model"].count_params()),
           "seconds_per_step": round(t, 4), "cpu_seconds_per_step": round(r["step_cpu_s"], 3),
           "samples_per_s": round(rate, 1), "epoch_s_real_data": round(epoch, 1),
           "run_h": round(epoch * cfg.epochs / 3600, 2), "train_gflop_per_clip": round(flops / 1e9, 3),
           "achieved_gflop_per_s": round(flops * rate / 1e9, 1)}
    print(json.dumps(out))
    print(f"{cfg.preset} preset, batch {B:,} ({n} clip{'s' if n > 1 else ''} of each of {C} signs), "
          f"strategy {args.strategy} ({r['replicas']} replica{'s' if r['replicas'] > 1 else ''}), "
          f"{'mixed float16' if cfg.mixed_precision else 'float32'}, XLA {'on' if cfg.jit_compile else 'off'}: "
          f"{t:.3g} s a step (CPU {r['step_cpu_s']:.3g} s), {rate:,.1f} samples/s; "
          f"load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cores")
    print(f"real data ({REAL_TRAIN_CLIPS:,} training clips): an epoch of {steps} steps "
          f"{training.format_duration(epoch)}, {cfg.epochs} epochs {training.format_duration(epoch * cfg.epochs)}")
    sustained = (10, 50, 200)
    print(f"training FLOPs: {flops / 1e9:.3f} GFLOP a clip, {flops * REAL_TRAIN_CLIPS / 1e12:.1f} TFLOP an epoch; "
          f"achieved {flops * rate / 1e12:.3g} TFLOP/s; a device sustaining {' / '.join(map(str, sustained))} "
          f"TFLOP/s: {' / '.join(f'{flops * REAL_TRAIN_CLIPS / (s * 1e12):.2g}' for s in sustained)} s an epoch")
    return out


if __name__ == "__main__":
    main()
