"""Presets, paths and parameter checking shared by the package and the chapters."""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARTIFACTS_DIR = REPO_ROOT / "artifacts"
# 84 genuine GISLR clips beside the repository (present in CI, never committed); override with an env var.
REAL_SAMPLE_DIR = Path(os.environ.get("GISLR_REAL_SAMPLE_DIR", REPO_ROOT.parent / "shared" / "real_sample"))
# The spelling of `data_dir` that selects the small real sample shipped inside the package.
REAL_SAMPLE_NAME = "real-sample"


def real_sample_dir() -> Path:
    """The folder of the 16 genuine GISLR clips shipped with the package (Kaggle layout).

    ``gislr_utils/data/real_sample/``: train.csv (only these clips), the sign map and
    ``train_landmark_files/<pid>/<sid>.parquet``, the competition's files byte for byte (CC BY 4.0,
    PopSign ASL v1.0; see its ATTRIBUTION.md). Chapters reach it with ``data_dir="real-sample"``
    (:data:`REAL_SAMPLE_NAME`); chapters 1-3, 5 and 6 draw it beside the synthetic set.
    """
    path = Path(str(resources.files("gislr_utils").joinpath("data", "real_sample")))
    if not (path / "train.csv").is_file():
        raise FileNotFoundError(f"{path}: the shipped real sample is missing (train.csv not found); "
                                "reinstall gislr_utils")
    return path

# Model and training settings. `seed` is the report's model and fit call, to the last parameter
# (5,315,965 parameters; constant lr 1e-3, weight decay 1e-5, no callbacks). `classroom` is the
# small default that trains on the synthetic set on a 2-core CPU in minutes.
PRESETS: dict[str, dict] = {
    "seed": dict(
        input_size=64, lips_units=384, hands_units=384, pose_units=384, units=512,
        num_blocks=2, num_heads=8, mlp_ratio=2, mlp_dropout=0.30, classifier_dropout=0.10,
        num_classes=250, attention_mask="seed", frame_drop=0.25,
        epochs=100, batch_all_signs_n=4, learning_rate=1e-3, weight_decay=1e-5,
        schedule="constant", wd_ratio=0.05, clipnorm=1.0, label_smoothing=0.25,
    ),
    "classroom": dict(
        input_size=64, lips_units=64, hands_units=64, pose_units=64, units=96,
        num_blocks=2, num_heads=4, mlp_ratio=2, mlp_dropout=0.30, classifier_dropout=0.10,
        num_classes=250, attention_mask="keys", frame_drop=0.25,
        epochs=10, batch_all_signs_n=2, learning_rate=1e-3, weight_decay=1e-5,
        schedule="cosine", wd_ratio=0.05, clipnorm=1.0, label_smoothing=0.25,
    ),
}


def get_preset(preset: str = "classroom", **overrides) -> dict:
    """Return a copy of a preset's settings with `overrides` applied; unknown names fail clearly."""
    check_choice("preset", preset, PRESETS)
    cfg = dict(PRESETS[preset])
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for preset {preset!r}; known: {sorted(cfg)}")
    cfg.update(overrides)
    return cfg


def check_choice(name: str, value, choices) -> None:
    """Raise ValueError naming the parameter when `value` is not one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {sorted(choices)}")


def load_sign_map(path: str | Path | None = None) -> dict[str, int]:
    """The competition's sign -> prediction index map (250 signs, 'TV': 0 ... 'zipper': 249).

    Without `path` the copy shipped in the package is read.
    """
    if path is None:
        text = resources.files("gislr_utils").joinpath("data/sign_to_prediction_index_map.json").read_text()
    else:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: sign map not found")
        text = path.read_text()
    return json.loads(text)


SIGN_TO_INDEX = load_sign_map()
INDEX_TO_SIGN = {v: k for k, v in SIGN_TO_INDEX.items()}


def show_path(path) -> str:
    """`path` relative to the repository when inside it (pages and logs show no machine-specific paths)."""
    path = Path(path)
    try:
        return "./" + str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
