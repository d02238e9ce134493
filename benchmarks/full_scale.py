"""Full-scale rehearsal of the seed preset: a synthetic set the size of GISLR, prepared and trained.

    python benchmarks/full_scale.py --full [--out DIR] [--distinct N] [--steps 3] [--cleanup]
    python benchmarks/full_scale.py --clips 5000 [...]      # a smaller rehearsal

Without ``--full`` or ``--clips`` it only says what it would do (`make benchmarks` runs every
script here; the full rehearsal writes about 40 GB and runs for an hour or more).

Stages (each prints wall time, CPU time, peak memory, disk used and a projection):

1. ``generate``: `synthetic.generate` at the real data's size: 94,477 clips (``--clips``) of
   21 participants, the real clip-length distribution, into ``<out>/data`` (about 376 KB a
   clip: 35 GB at full size). The generator has 26 hand-made signs (`synthetic.CATALOGUE`), not
   250: the set holds those 26 signs with more clips a sign (about 3,600 instead of about 380),
   the same number of clips of each sign and participant; preparing and training cost the same
   per clip whatever the sign. The generator draws clips one after the other (about 10 ms of CPU
   a clip); on a busy machine ``--distinct N`` generates about N clips (a multiple of 21 x 26)
   and brings the set to ``--clips`` files with byte copies of them under new sequence ids (same
   participant and sign; `replicate`), which costs the next stages the same per file. Skipped
   when ``<out>/data`` already holds this set.
2. ``prepare``: `preprocessing.prepare_dataset` into ``<out>/artifacts`` (memory-mapped result);
   goal: <= 3 minutes for 94,477 files on 2 cores.
3. ``train``: the seed preset as chapter 4's recipe (`recipe.train_run`) sets it up
   (`training.split_rows`, statistics of the training clips, then `train_step.time_steps`:
   `model.build_model` and `training.compile_model`, ``fit`` on `training.BalancedSignBatches`
   over the memory-mapped arrays), fitted for ``--warmup`` + ``--steps`` steps; the time per
   step after the warm-up gives the projected time of a full run (the preset's 100 epochs of
   ``len(train) // 1000`` steps; the seed preset validates nothing while it trains). With 26
   signs instead of 250, a batch holds 1000 // 26 = 38 clips of every sign (988 clips) instead
   of the seed's 4 of each of 250 (1,000): the same cost a step. Then an epoch's batches are
   drawn (``batches[step]``) from the memory map, for the peak memory of an epoch.
4. ``pipeline``: `training.BalancedSignBatches`' samples/s from the memory map and from RAM
   against the training step's (`benchmarks/input_pipeline.py`).

Peak memory is sampled from ``/proc/self/status`` every 0.1 s: ``VmRSS`` (what `top` shows:
anonymous memory plus file pages mapped and touched, such as a memory-mapped X that has been
read) and ``RssAnon`` (memory the process owns; file pages can be dropped by the kernel at any
time). The goal (<= 8 GB) is for the peak RSS. Results go to ``<out>/full_scale.json`` too, one
entry per stage, so that stages run in separate calls are reported together.
Remove ``<out>`` afterwards (``--cleanup`` does it at the end).

The measurements below were made with an earlier generator that drew 224 more signs
procedurally (250 in all, unevenly many clips each); they are not redone.

Measured 2026-11-25 (``--full --distinct 8000 --steps 1``, 2 cores shared with other jobs, load
average 6-12, so wall times are 3-4x those of an idle machine; the CPU-time estimates are not):
generate 8,000 clips 284 s + copies, 32.7 GB; prepare 795 s wall, 2.8 ms CPU a file (2.2 min
on 2 idle cores), peak RSS 1.3 GB, cache 4.5 GB; statistics 111 s, 0.85 GB anonymous; seed
training step (batch 1,000) 54.5 CPU-s (about 37 samples/s on 2 idle cores), peak anonymous
memory 7.1 GB (VmRSS 12.0 GB with the memory-mapped X's cached pages), epoch of 79 steps plus
validation about 38 min, 100 epochs about 63 h on 2 idle cores; sampler 19,600 samples/s from
the memory map, 23,000 from RAM. (That code validated on the held-out participants every epoch;
the seed preset now validates nothing while it trains, as the seed report.)

Preparation before and after the package was cut down (issue 15: plain `pyarrow.parquet.ParquetFile`,
no memo of layout columns, every clip kept, coordinates checked against a bound, content key hashed
while X is written), measured 2026-11-29 with ``--full --distinct 8000 --stages generate,prepare``,
runs back to back in pairs on the 2 shared cores (load average 2-4: other jobs ran), the prepared
cache removed before each run:

===============================  ===========================  ===========================  ========
code                             wall (s)                     CPU (s)                      peak RSS
===============================  ===========================  ===========================  ========
de79f7d (173 no-hand clips out)  152, 234, 185, 164, 137      185, 184, 176, 166, 176      1.3 GB
                                 (median 164)                 (median 176; 1.9 ms a file)
this version (94,477 clips)      216, 222, 215 (median 216)   215, 221, 209 (2.3 ms)       1.3 GB
===============================  ===========================  ===========================  ========

(The first two runs of this version gave the thread pool one task a file, the third tasks of up
to 64 files, as now.) About +22% CPU (+0.4 ms a file: on 2 idle cores 1.8 min instead of 1.5 min
for the full set). Where it goes (`load_frames`, one thread, 3,000 files of this set, both versions in one process):
1.08 -> 1.49 ms a file: decoding ``type`` and ``landmark_index`` of every file, which the memo of
byte-identical column chunks skipped, 0.21 ms, and checking them 0.05 ms (together about 12% of a
file's time in `preprocess_files`); the bound check on the float64 values 0.07 ms; `ParquetFile`
instead of the private reader 0.01 ms; SHA-256 of X 0.03 ms. Peak anonymous memory 0.83 GB, cache
4.5 GB: unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import gislr_utils  # noqa: F401  (silences TensorFlow first)
from gislr_utils import config, dataset, preprocessing, statistics, synthetic, training

N_CLIPS = 94_477
N_SIGNS = len(synthetic.CATALOGUE)     # 26 hand-made signs (GISLR: 250)
SEED_BATCH = 1000                     # the seed's batch: 4 clips of each of 250 signs
N_PARTICIPANTS = 21
GB = 1024 ** 3


class PeakMemory:
    """Peak VmRSS and RssAnon of this process while the `with` block runs (sampled)."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak = {"VmRSS": 0, "RssAnon": 0}

    @staticmethod
    def now() -> dict:
        out = {}
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "RssAnon"):
                        out[key] = int(value.split()[0]) * 1024
        except OSError:                                   # not Linux: lifetime peak only
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            out = {"VmRSS": peak, "RssAnon": peak}
        return out

    def _sample(self):
        for k, v in self.now().items():
            self.peak[k] = max(self.peak[k], v)

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def disk_bytes(path: Path) -> int:
    """Bytes of the files under `path` (apparent sizes)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Stage:
    """Times a stage (wall and CPU), samples its peak memory, records the result."""

    def __init__(self, name: str, results: dict):
        self.name, self.results = name, results
        self.info: dict = {}

    def __enter__(self):
        self.mem = PeakMemory().__enter__()
        self.t0, self.c0 = time.perf_counter(), cpu_seconds()
        self.load0 = os.getloadavg()
        return self

    def __exit__(self, exc_type, *exc):
        self.mem.__exit__()
        if exc_type is not None:
            return False
        self.results[self.name] = {
            "wall_s": time.perf_counter() - self.t0, "cpu_s": cpu_seconds() - self.c0,
            "peak_rss_gb": self.mem.peak["VmRSS"] / GB, "peak_anon_gb": self.mem.peak["RssAnon"] / GB,
            "loadavg_start": self.load0, "loadavg_end": os.getloadavg(), **self.info}
        return False


def fmt_hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def stage_generate(args, results):
    data_dir = args.out / "data"
    marker = data_dir / ".full_scale_complete.json"
    distinct = min(args.distinct or args.clips, args.clips)
    settings = {"n_clips": args.clips, "distinct": distinct, "n_signs": N_SIGNS,
                "n_participants": N_PARTICIPANTS, "seed": args.seed,
                "generator_version": synthetic.GENERATOR_VERSION}
    if marker.exists() and json.loads(marker.read_text()) == settings:
        print(f"generate: {data_dir} already holds this set; not generated again")
        return
    with Stage("generate", results) as st:
        per_sign = max(1, distinct // (N_PARTICIPANTS * N_SIGNS))   # clips of a sign a participant
        synthetic.generate(data_dir, seed=args.seed, n_signs=N_SIGNS,
                           n_participants=N_PARTICIPANTS, clips_per_sign=per_sign, overwrite=True,
                           progress=args.progress)
        gen_s = time.perf_counter() - st.t0
        distinct = per_sign * N_PARTICIPANTS * N_SIGNS
        if distinct < args.clips:
            replicate(data_dir, args.clips, args.seed)
        marker.write_text(json.dumps(settings))
        clips = dataset.read_clips(data_dir)
        st.info.update(n_clips=len(clips), distinct=distinct, generate_s=gen_s,
                       n_signs=int(clips["sign"].nunique()),
                       n_participants=int(clips["participant_id"].nunique()),
                       disk_gb=disk_bytes(data_dir) / GB)


def replicate(data_dir: Path, total: int, seed: int = 0) -> None:
    """Bring a generated set to `total` clips: byte copies of randomly chosen clips' files
    under new, unused sequence ids (same participant and sign), listed in train.csv."""
    import pandas as pd
    from concurrent.futures import ThreadPoolExecutor

    train = pd.read_csv(data_dir / "train.csv")
    extra = total - len(train)
    rng = np.random.default_rng([seed, 11])
    src = train.iloc[rng.integers(0, len(train), extra)].reset_index(drop=True)
    ids = np.setdiff1d(np.unique(rng.integers(10 ** 6, 2 ** 32 - 1, 2 * extra)),
                       train["sequence_id"].to_numpy())
    ids = rng.permutation(ids)[:extra]
    assert len(ids) == extra
    new = src.assign(sequence_id=ids)
    new["path"] = [f"train_landmark_files/{p}/{i}.parquet"
                   for p, i in zip(new["participant_id"], new["sequence_id"])]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda a: shutil.copyfile(data_dir / a[0], data_dir / a[1]),
                      zip(src["path"], new["path"]), chunksize=256))
    pd.concat([train, new]).to_csv(data_dir / "train.csv", index=False, lineterminator="\n")


def stage_prepare(args, results):
    data_dir, art = args.out / "data", args.out / "artifacts"
    shutil.rmtree(art / "prepared", ignore_errors=True)          # measure a preparation, not a load
    with Stage("prepare", results) as st:
        prep = preprocessing.prepare_dataset(data_dir, art, workers=args.workers,
                                             progress=args.progress, mmap=True)
        st.info.update(n_clips=len(prep.clips), n_no_hand=int((~prep.has_hand).sum()), key=prep.key,
                       X_shape=list(prep.X.shape), disk_gb=disk_bytes(prep.cache_dir) / GB,
                       files_per_s=len(prep.clips))
    r = results["prepare"]
    n_files = r["files_per_s"]
    r["files_per_s"] = n_files / r["wall_s"]
    r["projection_full_s"] = N_CLIPS / r["files_per_s"]
    # CPU-bound estimate for an otherwise idle machine with this many cores
    r["cpu_ms_per_file"] = 1000 * r["cpu_s"] / n_files
    r["idle_projection_full_s"] = N_CLIPS * r["cpu_s"] / n_files / (os.cpu_count() or 1)


def stage_train(args, results):
    import train_step

    prep = preprocessing.prepare_dataset(args.out / "data", args.out / "artifacts", progress=False, mmap=True)
    cfg = config.resolve("seed", args.seed, batch_all_signs_n=SEED_BATCH // N_SIGNS)
    with Stage("stats", results) as st:
        rows = training.split_rows(prep, cfg)
        stats = statistics.compute_stats(prep.X, rows=rows["train"])
        st.info.update(n_train=len(rows["train"]), n_test=len(rows["test"]))
    with Stage("train", results) as st:
        batches = training.BalancedSignBatches(prep, rows["train"], cfg)
        r = train_step.time_steps(cfg, batches, stats, steps=args.steps, warmup=args.warmup)
        epoch_s = batches.steps_per_epoch * r["step_s"]
        idle_epoch_s = batches.steps_per_epoch * r["step_cpu_s"] / (os.cpu_count() or 1)
        # an epoch's worth of batches drawn from the memory map: the pages it touches count in
        # VmRSS (file pages, which the kernel can drop), as during a real epoch
        t0 = time.perf_counter()
        for step in range(len(batches)):
            batches[step]
        st.info.update(
            batch_size=batches.batch_size, steps_timed=args.steps, step_s=r["step_s"],
            samples_per_s=batches.batch_size / r["step_s"], steps_per_epoch=batches.steps_per_epoch,
            epochs=cfg.epochs, epoch_s=epoch_s, projection_full_s=cfg.epochs * epoch_s,
            params=int(r["model"].count_params()), step_cpu_s=r["step_cpu_s"], idle_epoch_s=idle_epoch_s,
            idle_projection_full_s=cfg.epochs * idle_epoch_s, epoch_draw_s=time.perf_counter() - t0)


def stage_pipeline(args, results):
    import input_pipeline

    prep = preprocessing.prepare_dataset(args.out / "data", args.out / "artifacts", progress=False, mmap=True)
    step_rate = results.get("train", {}).get("samples_per_s")
    with Stage("pipeline", results) as st:
        st.info.update(input_pipeline.measure(prep, seconds=args.pipeline_seconds, step_rate=step_rate,
                                              steps=args.steps, seed=args.seed))


def report(results: dict, args) -> None:
    import input_pipeline

    print(f"\nfull-scale rehearsal: {args.clips} clips, {N_SIGNS} signs, {N_PARTICIPANTS} "
          f"participants; {os.cpu_count()} cores")
    for name in ("generate", "prepare", "stats", "train", "pipeline"):
        r = results.get(name)
        if r is None or not isinstance(r, dict):
            continue
        line = (f"{name:9s} wall {r['wall_s']:8.1f} s  cpu {r['cpu_s']:8.1f} s  "
                f"peak RSS {r['peak_rss_gb']:5.2f} GB (anon {r['peak_anon_gb']:5.2f} GB)  "
                f"load {r['loadavg_start'][0]:.1f}->{r['loadavg_end'][0]:.1f}")
        if "disk_gb" in r:
            line += f"  disk {r['disk_gb']:.2f} GB"
        print(line)
        if name == "generate":
            print(f"          {r['n_clips']} clips ({r['distinct']} generated in "
                  f"{r['generate_s']:.0f} s = {r['distinct'] / r['generate_s']:.0f} clips/s, the "
                  f"rest copies), {r['n_signs']} signs, {r['n_participants']} participants")
        if name == "prepare":
            print(f"          {r['files_per_s']:.0f} files/s, {r['n_clips']} clips ({r['n_no_hand']} "
                  f"without a hand, kept as padding); X {r['X_shape']}; key {r['key']}; "
                  f"projected for {N_CLIPS} files: {fmt_hours(r['projection_full_s'])}; "
                  f"CPU {r['cpu_ms_per_file']:.1f} ms/file -> "
                  f"{fmt_hours(r['idle_projection_full_s'])} on {os.cpu_count()} idle cores")
        if name == "train":
            print(f"          seed preset ({r['params']:,} parameters), batch {r['batch_size']}: "
                  f"{r['step_s']:.1f} s/step (mean of {r['steps_timed']}) = {r['samples_per_s']:.0f} samples/s")
            print(f"          epoch = {r['steps_per_epoch']} steps = {fmt_hours(r['epoch_s'])}; projected "
                  f"{r['epochs']} epochs: {fmt_hours(r['projection_full_s'])} at this load")
            print(f"          CPU {r['step_cpu_s']:.1f} s/step -> on {os.cpu_count()} idle cores: epoch "
                  f"{fmt_hours(r['idle_epoch_s'])}, {r['epochs']} epochs {fmt_hours(r['idle_projection_full_s'])}; "
                  f"an epoch's batches drawn from the memory map in {r['epoch_draw_s']:.1f} s")
        if name == "pipeline":
            print("          " + input_pipeline.format_results(r).replace("\n", "\n          "))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gislr_full_scale")
    ap.add_argument("--full", action="store_true", help=f"{N_CLIPS} clips (the real size)")
    ap.add_argument("--clips", type=int, default=None, help="clips in the set")
    ap.add_argument("--distinct", type=int, default=None,
                    help="clips generated (default all); the rest are byte copies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3, help="training steps timed after the warm-up")
    ap.add_argument("--warmup", type=int, default=1, help="training steps not timed (tracing)")
    ap.add_argument("--pipeline-seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=None, help="preprocessing threads")
    ap.add_argument("--stages", default="generate,prepare,train,pipeline")
    ap.add_argument("--progress", action="store_true", help="tqdm bars")
    ap.add_argument("--cleanup", action="store_true", help="delete --out at the end")
    args = ap.parse_args(argv)
    if args.clips is None:
        if not args.full:
            print(f"full_scale.py: pass --full for the {N_CLIPS}-clip rehearsal (about 40 GB "
                  f"under {args.out}, an hour or more on 2 cores) or --clips N for a smaller one")
            return
        args.clips = N_CLIPS
    stages = args.stages.split(",")
    unknown = set(stages) - {"generate", "prepare", "train", "pipeline"}
    if unknown:
        ap.error(f"unknown stage(s) {sorted(unknown)}")

    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "full_scale.json"
    saved = json.loads(json_path.read_text()) if json_path.exists() else {}
    if saved.get("clips") != args.clips:
        saved = {"clips": args.clips}
    results = dict(saved)
    print(f"{args.out}: free disk {shutil.disk_usage(args.out).free / GB:.0f} GB; "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in stages:
        {"generate": stage_generate, "prepare": stage_prepare, "train": stage_train,
         "pipeline": stage_pipeline}[name](args, results)
        json_path.write_text(json.dumps({k: v for k, v in results.items()
                                         if not k.startswith("_")}, indent=1))
    report(results, args)
    if args.cleanup:
        shutil.rmtree(args.out)
        print(f"removed {args.out}")


if __name__ == "__main__":
    main()
