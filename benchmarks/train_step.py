"""Time of a training step of a preset, on one device or several, and the projected epoch and run.

Builds the preset's model (statistics mean 0.5, std 0.2) and compiles it as `training.train` does:
`model.build_model` and `training.compile_model` in the scope of `training.get_strategy(--strategy)`,
under Keras' "mixed_float16" policy with ``--mixed-precision``, with XLA with ``--jit-compile``
(else TensorFlow op determinism on, as `training.train`). It fits ``--warmup`` + ``--steps`` steps on
`training.batch_dataset` of random arrays of the real shape (`training.BalancedSignBatches`: ``--n``
clips of each of the 250 signs a batch; default the preset's: 4 for seed, a batch of 1,000) and times
the ``--steps`` after the warm-up (the first step traces and compiles); the device is synchronised
(the loss read) only at the start and the end of the timed steps. Prints the seconds a step (wall,
and CPU time of this process), samples/s, the projected epoch and run on the real data (80,229
training clips, ``80,229 // batch`` steps an epoch, the preset's epochs; the seed preset validates
nothing while it trains, so that is its whole run) and the training FLOPs per clip (3 x the forward
pass: every Dense kernel once a frame, the classifier once a clip, q k^T and the weighted values of
every block; 2 FLOPs a multiply-add), which turns a device's sustained FLOP/s into a projection.

On a CPU (the book's Measurements appendix):

    python benchmarks/train_step.py --preset seed --n 4 --steps 3
    GISLR_CPU_REPLICAS=2 python benchmarks/train_step.py --preset seed --n 1 --strategy mirrored

(``GISLR_CPU_REPLICAS=2`` splits the CPU into two logical devices: a test of the multi-device code.)
On a machine with GPUs (issue 18): the seed preset at its real batch size on one GPU and on all of
them ("mirrored"), each without and with mixed precision:

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


def time_steps(cfg, batches, stats=None, strategy="one", steps=3, warmup=2) -> dict:
    """Seconds a training step of `cfg`'s model on `batches` (a `training.BalancedSignBatches`),
    built and compiled as `training.train` does; the mean of `steps` after `warmup` (>= 1) steps.
    Returns step_s, step_cpu_s, replicas and the model."""
    net, distribution = training.build_compiled(cfg, stats, strategy)
    clock = _Clock(max(1, warmup), steps)
    net.fit(training.batch_dataset(batches), steps_per_epoch=clock.ends[1], epochs=1, callbacks=[clock],
            shuffle=False, verbose=0)
    (t0, c0), (t1, c1) = clock.marks
    return {"step_s": (t1 - t0) / steps, "step_cpu_s": (c1 - c0) / steps,
            "replicas": distribution.num_replicas_in_sync, "model": net}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="seed", choices=sorted(config.PRESETS))
    ap.add_argument("--n", type=int, default=None, help="clips of every sign in a batch (default: the preset's)")
    ap.add_argument("--steps", type=int, default=3, help="steps timed")
    ap.add_argument("--warmup", type=int, default=2, help="steps not timed (the first traces)")
    ap.add_argument("--strategy", default="one", choices=training.STRATEGIES)
    ap.add_argument("--mixed-precision", action="store_true")
    ap.add_argument("--jit-compile", action="store_true")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        ap.error("--steps and --warmup must be >= 1")
    cfg = config.resolve(args.preset, batch_all_signs_n=args.n, mixed_precision=args.mixed_precision,
                         jit_compile=args.jit_compile)
    n, C = cfg.batch_all_signs_n, cfg.num_classes
    rng = np.random.default_rng(0)
    X = rng.random((C * n, cfg.input_size, 66, 3), dtype=np.float32)
    idxs = np.tile(np.arange(cfg.input_size, dtype=np.float32), (C * n, 1))
    y = np.repeat(np.arange(C), n)
    stats = {"mean": np.full((66, 2), 0.5, np.float32), "std": np.full((66, 2), 0.2, np.float32)}
    batches = training.BalancedSignBatches(X, idxs, y, n, seed=cfg.seed, num_classes=C)
    r = time_steps(cfg, batches, stats, args.strategy, args.steps, args.warmup)
    t, B = r["step_s"], batches.batch_size
    rate, flops = B / t, train_flops_per_clip(r["model"], cfg)
    steps = REAL_TRAIN_CLIPS // B
    epoch = steps * t
    out = {"preset": cfg.preset, "batch": B, "strategy": args.strategy, "replicas": r["replicas"],
           "mixed_precision": cfg.mixed_precision, "jit_compile": cfg.jit_compile,
           "gpus": len(tf.config.list_physical_devices("GPU")), "cpu_count": os.cpu_count(),
           "load_avg": round(os.getloadavg()[0], 2), "steps_timed": args.steps,
           "seconds_per_step": round(t, 4), "cpu_seconds_per_step": round(r["step_cpu_s"], 3),
           "samples_per_s": round(rate, 1), "epoch_s_real_data": round(epoch, 1),
           "run_h": round(epoch * cfg.epochs / 3600, 2), "train_gflop_per_clip": round(flops / 1e9, 3),
           "achieved_gflop_per_s": round(flops * rate / 1e9, 1)}
    print(json.dumps(out))
    print(f"{cfg.preset} preset, batch {B:,} ({n} clip{'s' if n > 1 else ''} of each of {C} signs), "
          f"strategy {args.strategy} ({r['replicas']} replica{'s' if r['replicas'] > 1 else ''}), "
          f"{'mixed float16' if cfg.mixed_precision else 'float32'}{', XLA' if cfg.jit_compile else ''}: "
          f"{t:.3g} s a step (CPU {r['step_cpu_s']:.3g} s), {rate:,.1f} samples/s")
    print(f"real data ({REAL_TRAIN_CLIPS:,} training clips): an epoch of {steps} steps "
          f"{training.format_duration(epoch)}, {cfg.epochs} epochs {training.format_duration(epoch * cfg.epochs)}")
    sustained = (10, 50, 200)
    print(f"training FLOPs: {flops / 1e9:.3f} GFLOP a clip, {flops * REAL_TRAIN_CLIPS / 1e12:.1f} TFLOP an epoch; "
          f"achieved {flops * rate / 1e12:.3g} TFLOP/s; a device sustaining {' / '.join(map(str, sustained))} "
          f"TFLOP/s: {' / '.join(f'{flops * REAL_TRAIN_CLIPS / (s * 1e12):.2g}' for s in sustained)} s an epoch")
    return out


if __name__ == "__main__":
    main()
