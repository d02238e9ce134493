"""The run's settings (one object, resolved once), the presets, paths and parameter checks.

A training run is described by one :class:`RunConfig`: the preset's values with the chapter's
overrides applied, checked once by :func:`resolve`. It is the run's identity (hashed into the
run's key), it is what `model.build_model` and chapter 4's recipe (`recipe.train_run`) take, and it is the table that
chapter 4 shows. Nothing else in the package resolves a preset.
"""
from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
# 84 genuine GISLR clips beside the repository (present in CI, never committed); override with an env var.
REAL_SAMPLE_DIR = Path(os.environ.get("GISLR_REAL_SAMPLE_DIR", REPO_ROOT.parent / "shared" / "real_sample"))
# The spelling of `data_dir` that selects the small real sample shipped inside the package.
REAL_SAMPLE_NAME = "real-sample"


class ParameterError(ValueError):
    """A parameter has a bad value; the message names the parameter and what is allowed."""


def default_artifacts_dir() -> Path:
    """``<repository>/artifacts`` in a clone of the book (an editable install or a checkout);
    ``./artifacts`` (the working directory) for a package installed without the repository,
    never inside ``site-packages``."""
    in_checkout = (REPO_ROOT / "_toc.yml").is_file() and (REPO_ROOT / "gislr_utils").is_dir()
    return (REPO_ROOT if in_checkout else Path.cwd()) / "artifacts"


def real_sample_dir() -> Path:
    """The folder of the 16 genuine GISLR clips shipped with the package (Kaggle layout).

    ``gislr_utils/data/real_sample/``: train.csv (only these clips), the sign map and
    ``train_landmark_files/<pid>/<sid>.parquet``, the competition's files byte for byte (CC BY 4.0,
    PopSign ASL v1.0; see its ATTRIBUTION.md). Chapters reach it with ``data_dir="real-sample"``.
    """
    path = Path(str(resources.files("gislr_utils").joinpath("data", "real_sample")))
    if not (path / "train.csv").is_file():
        raise FileNotFoundError(f"{path}: the shipped real sample is missing (train.csv not found); "
                                "reinstall gislr_utils")
    return path


# The competition's sign -> prediction index map (250 signs, 'TV': 0 ... 'zipper': 249).
SIGN_TO_INDEX: dict[str, int] = json.loads(
    resources.files("gislr_utils").joinpath("data/sign_to_prediction_index_map.json").read_text())
INDEX_TO_SIGN = {v: k for k, v in SIGN_TO_INDEX.items()}


def show_path(path) -> str:
    """`path` relative to the repository when inside it (pages and logs show no machine-specific paths)."""
    path = Path(path)
    try:
        return "./" + str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------------
# The settings of a run
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run (chapter 4 shows them as a table).

    The model (chapter 3): ``input_size`` frames, ``embedding_units`` per landmark group,
    ``units`` per frame, ``num_blocks`` transformer blocks of ``num_heads`` heads, an MLP of
    ``mlp_ratio * units``, dropouts ``mlp_dropout`` and ``classifier_dropout``, ``num_classes``
    outputs, the attention mask (``"seed"``: the original's padded-query mask; ``"keys"``:
    padded keys), the random ``frame_drop`` and whether it also runs at inference (the
    original's quirk). Training (chapter 4): ``epochs``, ``batch_all_signs_n`` clips of every
    sign per batch, AdamW with ``learning_rate``, ``schedule`` ("constant": the seed's fit call;
    "cosine": the Kaggle notebook's), ``weight_decay`` (per step, the seed's tensorflow-addons
    meaning; "cosine" uses ``wd_ratio * lr``), ``clipnorm``, ``label_smoothing``;
    ``validation_split``, the share of the *training* participants held out to validate after
    every epoch (0: none, as the seed; learning curves only: every run keeps its final epoch,
    as the seed did); ``handless_clips`` "keep" (clips
    with no hand in any frame train as all-padding inputs, as the original) or "drop" (left out,
    and counted); ``mixed_precision`` (a GPU option) and ``jit_compile`` (XLA compiles the
    training step: one compilation, then about twice as fast on a laptop CPU). The winners' changes
    (chapter 7, off in the seed and classroom presets): ``augmentation`` (training batches:
    `augment.augment_batch`), ``normalisation`` ("seed": training statistics; "reference": per
    clip around a lip landmark, `improved.ReferenceNormalisation`), ``motion_lags`` (motion
    features of lags 1 to k), ``late_dropout`` (a dropout before the classifier that starts after
    ``late_dropout_start`` of the training steps) and ``conv_blocks`` (first place's Conv1D blocks before
    each transformer block). ``preset`` and ``seed`` complete the run's identity.
    """

    preset: str = "classroom"
    seed: int = 0
    input_size: int = 64
    embedding_units: int = 64
    units: int = 96
    num_blocks: int = 2
    num_heads: int = 4
    mlp_ratio: int = 2
    mlp_dropout: float = 0.30
    classifier_dropout: float = 0.10
    num_classes: int = 250
    attention_mask: str = "keys"
    frame_drop: float = 0.25
    frame_drop_at_inference: bool = False
    epochs: int = 10
    batch_all_signs_n: int = 2
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    weight_decay: float = 1e-5
    wd_ratio: float = 0.05
    clipnorm: float = 1.0
    label_smoothing: float = 0.25
    validation_split: float = 0.10
    handless_clips: str = "keep"
    mixed_precision: bool = False
    jit_compile: bool = True
    augmentation: bool = False
    normalisation: str = "seed"
    motion_lags: int = 0
    late_dropout: float = 0.0
    late_dropout_start: float = 0.8
    conv_blocks: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def overrides(self) -> dict:
        """The settings that differ from the preset's (seed excluded), in field order."""
        base = PRESETS[self.preset]
        return {k: v for k, v in self.as_dict().items() if k in base and base[k] != v}


# The seed report's model and fit call, to the last parameter (5,315,965 parameters; constant lr
# 1e-3 and weight decay 1e-5: its model.fit passes no callbacks; no validation, final model).
SEED = dict(
    input_size=64, embedding_units=384, units=512, num_blocks=2, num_heads=8, mlp_ratio=2,
    mlp_dropout=0.30, classifier_dropout=0.10, num_classes=250, attention_mask="seed",
    frame_drop=0.25, frame_drop_at_inference=True, epochs=100, batch_all_signs_n=4,
    learning_rate=1e-3, schedule="constant", weight_decay=1e-5, wd_ratio=0.05, clipnorm=1.0,
    label_smoothing=0.25, validation_split=0.0, handless_clips="keep",
    mixed_precision=False, jit_compile=False, augmentation=False, normalisation="seed", motion_lags=0,
    late_dropout=0.0, late_dropout_start=0.8, conv_blocks=0)
# The small default that trains on the synthetic set on a 2-core CPU in minutes.
CLASSROOM = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name not in ("preset", "seed")}
# The seed's model with the winners' changes (chapter 7; sources in its table): 3rd place's label
# smoothing 0.5, late dropout 0.2-0.3 from epoch 80 of 100, 1st place's normalisation, motion
# lags 1 and 2 and augmentations; the fixed attention mask (chapter 3) and no frame drop at
# inference. First place's Conv1D blocks stay an option (`conv_blocks`).
IMPROVED = {**SEED, "attention_mask": "keys", "frame_drop_at_inference": False, "label_smoothing": 0.5,
            "augmentation": True, "normalisation": "reference", "motion_lags": 2, "late_dropout": 0.3}
PRESETS: dict[str, dict] = {"seed": SEED, "classroom": CLASSROOM, "improved": IMPROVED}

# Why the classroom preset differs from the seed's, setting by setting (chapter 4's table).
CLASSROOM_REASONS = {
    "embedding_units": "a model that trains in minutes on a laptop CPU",
    "units": "a model that trains in minutes on a laptop CPU",
    "num_heads": "96 units split into heads of 24",
    "attention_mask": "the fix of the original's query mask (chapter 3)",
    "frame_drop_at_inference": "deterministic predictions (chapter 6 compares the masks)",
    "epochs": "minutes instead of hours",
    "batch_all_signs_n": "25 synthetic signs: 50-clip batches, more steps an epoch",
    "schedule": "the Kaggle notebook's decay: smooth curves in few epochs",
    "validation_split": "learning curves on signers the model does not train on",
    "jit_compile": "XLA: after its compilation, about twice as fast a step on a laptop CPU",
}

_CHOICES = {"attention_mask": ("seed", "keys"), "schedule": ("constant", "cosine"),
            "handless_clips": ("keep", "drop"), "normalisation": ("seed", "reference")}
# integer settings: (smallest, largest); float settings: (lowest, highest, highest included,
# lowest included)
INT_RANGES = {"seed": (0, 2**32 - 1), "input_size": (1, 4096), "embedding_units": (1, 8192),
              "units": (1, 8192), "num_blocks": (1, 64), "num_heads": (1, 256), "mlp_ratio": (1, 64),
              "num_classes": (2, 100_000), "epochs": (1, 10_000), "batch_all_signs_n": (1, 10_000),
              "motion_lags": (0, 8), "conv_blocks": (0, 8),
              # the chapters' own integer parameters
              "n_summary": (1, 10**7), "boxplot_clips": (1, 10**7), "n_confused": (2, 250),
              "latency_clips": (1, 10**5), "masking_epochs": (1, 10**4), "masking_seeds": (1, 20),
              "masking_units": (2, 8192), "ablation_epochs": (1, 10**4), "ablation_seeds": (1, 20),
              "ablation_units": (2, 8192)}
FLOAT_RANGES = {"mlp_dropout": (0.0, 1.0, False), "classifier_dropout": (0.0, 1.0, False),
                "frame_drop": (0.0, 1.0, False), "learning_rate": (0.0, 10.0, True, False),
                "weight_decay": (0.0, 1.0, True), "wd_ratio": (0.0, 1.0, True),
                "clipnorm": (0.0, 1e6, True), "label_smoothing": (0.0, 1.0, False),
                "validation_split": (0.0, 0.9, True), "late_dropout": (0.0, 1.0, False),
                "late_dropout_start": (0.0, 1.0, True)}


def check_int(name: str, value, minimum=None, maximum=None, allow_none: bool = False):
    """`value` as an int within [minimum, maximum] (default: the range of `name` in `INT_RANGES`),
    or ParameterError naming `name`. Bools and non-integral floats are refused; 3.0 is 3."""
    if minimum is None and maximum is None:
        minimum, maximum = INT_RANGES.get(name, (None, None))
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)
    if not ok:
        raise ParameterError(f"{name}={value!r} must be an integer" + (" or None" if allow_none else ""))
    value = int(value)
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ParameterError(f"{name}={value} must be <= {maximum}")
    return value


def check_float(name: str, value, low: float, high: float, high_included: bool = True,
                low_included: bool = True) -> float:
    """`value` as a float with ``low <= value <= high`` (``<`` where a bound is not included)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) or value != value:
        raise ParameterError(f"{name}={value!r} must be a number")
    if not (low <= value <= high) or (value == high and not high_included) or (value == low and not low_included):
        raise ParameterError(f"{name}={value!r} must be in {'[' if low_included else '('}{low}, "
                             f"{high}{']' if high_included else ')'}")
    return float(value)


def check_bool(name: str, value) -> bool:
    """`value` if it is True or False, else ParameterError naming `name`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name}={value!r} must be True or False")
    return bool(value)


def check_choice(name: str, value, choices):
    """`value` if it is one of `choices`, else ParameterError naming `name` and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(f"{name}={value!r} is not valid; choose one of {sorted(choices)}")
    return value


def resolve(preset: str = "classroom", seed: int = 0, **overrides) -> RunConfig:
    """The :class:`RunConfig` of `preset` with `overrides` (None: the preset's value), checked.

    Every value is checked and a bad one raises :class:`ParameterError` naming it: an unknown
    setting, a wrong type, a value out of its range, ``units`` not divisible by ``num_heads``,
    the inference-time frame drop without the seed's mask. Chapter 4 takes every setting as a
    papermill parameter and calls this.
    """
    check_choice("preset", preset, PRESETS)
    unknown = sorted(set(overrides) - set(PRESETS[preset]))
    if unknown:
        raise ParameterError(f"unknown setting(s) {unknown}; known: {sorted(PRESETS[preset])}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    values["seed"] = seed
    for name, value in values.items():
        if name in INT_RANGES:
            values[name] = check_int(name, value, *INT_RANGES[name])
        elif name in FLOAT_RANGES:
            values[name] = check_float(name, value, *FLOAT_RANGES[name])
        elif name in _CHOICES:
            check_choice(name, value, _CHOICES[name])
        else:
            values[name] = check_bool(name, value)
    if values["units"] % values["num_heads"]:
        raise ParameterError(f"units={values['units']} must be divisible by num_heads={values['num_heads']}")
    if values["frame_drop_at_inference"] and values["attention_mask"] != "seed":
        raise ParameterError("frame_drop_at_inference=True needs attention_mask='seed' "
                             "('keys' drops frames only in training)")
    return RunConfig(preset=preset, **values)
