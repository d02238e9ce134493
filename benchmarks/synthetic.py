"""Synthetic data set: generation time, reading speed and (optionally) a learnability baseline.

Generates a synthetic GISLR set (default size: `synthetic.DEFAULT_SIZE`, 25 signs x 20
participants x 3 clips = 1,500 clips) into a temporary directory and reports wall time, CPU time
(all threads), size on disk, clip lengths and the dominant-hand split; then reads every file with
`dataset.load_frames` and `dataset.validate_file` (files per second). With `--baseline`, the set
is preprocessed (`preprocessing.prepare_dataset`), split by participant as in training
(`training.split_by_participant`) and a logistic regression on the x, y of 8 time windows is
fitted: its held-out accuracy and most confused sign pairs say how hard the synthetic signs are
(the transformer should beat it).

It also holds the maintainer's tool that makes the generator's body template: `--write-template`
derives it from the real sample (``../shared/real_sample`` or ``$GISLR_REAL_SAMPLE_DIR``,
`derive_template`) and writes ``gislr_utils/data/synthetic_template.json`` (or the given path).

Run: `python benchmarks/synthetic.py [--seed 0] [--n-participants 20] [--baseline] [--keep DIR]`,
or `python benchmarks/synthetic.py --write-template [PATH]`.
"""
from __future__ import annotations

import argparse
import json
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


# ---------------------------------------------------------------------------------------------
# The maintainer's tool: the generator's template, derived from the real sample
# ---------------------------------------------------------------------------------------------
def mean_hand(d: np.ndarray) -> np.ndarray:
    """Mean 3-D hand shape of wrist-centred hands d [N, 21, 3] (one handedness): each hand scaled
    to unit RMS size, rotated onto a reference (Kabsch, no reflection), averaged; the result is
    turned to the canonical pose: wrist at 0, wrist->middle-finger base (9) = (0, -1, 0), index
    base (5) toward -x of the little-finger base (17), so the palm faces the camera (-z)."""
    x = d - d.mean(axis=1, keepdims=True)
    x = x / np.sqrt((x ** 2).sum(-1).mean(-1))[:, None, None]
    ref = x[np.argmin(((x - x.mean(0)) ** 2).sum((1, 2)))]
    for _ in range(4):
        u, _s, vt = np.linalg.svd(np.einsum("nki,kj->nij", x, ref))
        u[:, :, -1] *= np.sign(np.linalg.det(u @ vt))[:, None]      # no reflection
        ref = np.einsum("nki,nij->nkj", x, u @ vt).mean(0)          # x_i @ rot_i ~ ref
    ref = ref - ref[0]
    up = ref[9] / np.linalg.norm(ref[9])
    across = ref[5] - ref[17]
    across = across - (across @ up) * up
    across /= np.linalg.norm(across)
    return (ref @ np.stack([-across, -up, np.cross(across, up)]).T) / np.linalg.norm(ref[9])


def derive_template(real_dir=None) -> dict:
    """Derive the synthetic generator's template from a real GISLR sample (`write_template`; chapter 1
    compares the generated set with the real sample).

    Returns mean shapes, not data: the face (468 points, centred on its centroid, in units of its
    RMS radius, rolls aligned by 2-D Procrustes), the pose in body units (origin between the
    shoulders, unit = shoulder width; head points in face units), the resting arm and the hand
    (wrist at the origin, wrist->middle-finger base pointing up with length 1, right hands
    mirrored to left ones), and statistics of sizes, positions and z values.
    """
    clips = dataset.read_clips(real_dir or config.REAL_SAMPLE_DIR)
    frames = [dataset.load_frames(p).astype(np.float64) for p in clips["path"]]
    lengths = np.array([len(f) for f in frames])
    clip_of = np.repeat(np.arange(len(frames)), lengths)
    a = np.concatenate(frames)
    pose, face = a[:, synthetic.POSE0:synthetic.POSE0 + 33], a[:, synthetic.FACE]
    mid = (pose[:, 11, :2] + pose[:, 12, :2]) / 2
    sw = pose[:, 11, 0] - pose[:, 12, 0]

    # Face: centre, scale (RMS radius), 2-D Procrustes roll alignment.
    fc = face.mean(axis=1)
    rel = face[:, :, :2] - fc[:, None, :2]
    fs = np.sqrt((rel ** 2).sum(-1).mean(-1))
    rel = rel / fs[:, None, None]
    ref = rel.mean(0)
    for _ in range(3):
        dot = (rel * ref).sum((1, 2))
        cross = (rel[..., 0] * ref[:, 1] - rel[..., 1] * ref[:, 0]).sum(1)
        roll = np.arctan2(cross, dot)          # rotation taking each frame onto ref
        ref = synthetic._rot2(rel, roll).mean(0)
    face_z = ((face[:, :, 2] - fc[:, None, 2]) / fs[:, None]).mean(0)
    head_pose = synthetic._rot2((pose[:, :11, :2] - fc[:, None, :2]) / fs[:, None, None], roll).mean(0)
    body = (pose[:, :, :2] - mid[:, None]) / sw[:, None, None]

    # Arms and hands of both sides, right ones mirrored to the left side; the resting arm is the
    # one whose hand is missing in the whole clip.
    rest, active_z, upper, fore, hands, hand_len = [], [], [], [], [], []
    for s in (+1, -1):
        arm = synthetic.ARM + (s < 0)
        pts = body[:, arm] * np.array([s, 1.0])
        act = ~np.isnan(a[:, synthetic.HAND0[s], 0])
        resting = ~(np.bincount(clip_of, act, len(frames)) > 0)[clip_of]
        rest.append(np.concatenate([pts[resting], pose[resting][:, arm, 2:]], axis=-1))
        active_z.append(pose[act][:, arm, 2])
        upper.append(np.linalg.norm(pts[act, 1] - pts[act, 0], axis=-1))
        fore.append(np.linalg.norm(pts[act, 2] - pts[act, 1], axis=-1))
        h = a[act][:, synthetic.HAND0[s]:synthetic.HAND0[s] + 21]
        hands.append((h - h[:, :1]) * np.array([s, 1.0, 1.0]))
        hand_len.append(np.linalg.norm(hands[-1][:, 9], axis=-1) / sw[act])
    rest, hand_len = np.concatenate(rest), np.concatenate(hand_len)

    def per_clip(v):
        return np.array([v[clip_of == i].mean(axis=0) for i in range(len(frames))])

    face_off = (fc[:, :2] - mid) / sw[:, None]
    clip_roll = per_clip(roll)
    stats = {}
    for name, v in (("mid", mid), ("shoulder_width", sw), ("face_offset", face_off), ("face_scale", fs / sw)):
        stats[f"{name}_mean"], stats[f"{name}_std"] = per_clip(v).mean(0), per_clip(v).std(0)
    stats.update({
        "head_motion_std": (face_off - per_clip(face_off)[clip_of]).std(0),
        "head_roll_std": clip_roll.std(), "head_roll_frame_std": (roll - clip_roll[clip_of]).std(),
        "face_z_mean": fc[:, 2].mean(), "pose_z_clip_std": per_clip(pose[:, :11, 2].mean(1)).std(),
        "hand_length_mean": np.median(hand_len), "hand_length_std": hand_len.std(),
        "upper_arm": np.quantile(np.concatenate(upper), 0.9),
        "forearm": np.quantile(np.concatenate(fore), 0.9),
        "rest_arm_z": rest[:, :, 2].mean(0), "active_arm_z": np.concatenate(active_z).mean(0),
    })
    r4 = lambda v: np.round(np.asarray(v, dtype=np.float64), 4).tolist()  # noqa: E731
    return {
        "source": f"derived by benchmarks/synthetic.py (derive_template) from {len(frames)} real GISLR "
                  f"clips ({int(lengths.sum())} frames); mean shapes and statistics only",
        "n_clips": len(frames), "n_frames": int(lengths.sum()),
        "face": r4(np.concatenate([ref, face_z[:, None]], axis=1)),
        "pose_head": r4(np.concatenate([head_pose, pose[:, :11, 2].mean(0)[:, None]], axis=1)),
        "pose_body": r4(np.concatenate([body.mean(0), pose[:, :, 2].mean(0)[:, None]], axis=1)),
        "rest_arm": r4(rest.mean(0)), "hand": r4(mean_hand(np.concatenate(hands))),
        "stats": {k: r4(v) for k, v in stats.items()},
    }


def write_template(path=None, real_dir=None) -> Path:
    """Derive the template from the real sample and write it as JSON (run once by a maintainer);
    `path` defaults to the package's ``gislr_utils/data/synthetic_template.json``."""
    path = Path(path) if path else Path(synthetic.__file__).parent / "data" / synthetic.TEMPLATE_NAME
    path.write_text(json.dumps(derive_template(real_dir), indent=1) + "\n")
    return path



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-signs", type=int, default=synthetic.DEFAULT_SIZE["n_signs"],
                    help=f"2 to {len(synthetic.CATALOGUE)} (the hand-made signs)")
    ap.add_argument("--n-participants", type=int, default=synthetic.DEFAULT_SIZE["n_participants"])
    ap.add_argument("--clips-per-sign", type=int, default=synthetic.DEFAULT_SIZE["clips_per_sign"])
    ap.add_argument("--baseline", action="store_true", help="fit the logistic-regression baseline")
    ap.add_argument("--keep", type=Path, help="generate into this (empty) directory and keep it")
    ap.add_argument("--write-template", nargs="?", const="", metavar="PATH",
                    help="derive the generator's template from the real sample and write it (maintainers)")
    args = ap.parse_args()
    if args.write_template is not None:
        print(f"wrote {write_template(args.write_template or None)}")
        return

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
