"""The book's embedded default data set: synthetic signs in exactly the GISLR format.

The real GISLR data (tens of gigabytes, competition licence) cannot ship with the book, so by
default every chapter runs on a data set generated here, deterministically from a seed. Chapter 1
shows how it is made and how it compares with the real sample; the short version:

* **Bodies** come from a compact template derived once from the 84 real sample clips
  (``gislr_utils/data/synthetic_template.json``: mean face 468x3, pose 33x3, hand 21x3 and a few
  statistics; a maintainer derives it with ``benchmarks/synthetic.py --write-template``). Each
  synthetic participant has its own body size and position in the image, head pose, hand size,
  arm lengths, signing speed and amplitude, tracking quality and dominant hand (about a third use
  MediaPipe's ``left_hand``, as in the real sample).
* **Signs** (:data:`CATALOGUE`, a table in ``gislr_utils/data/synthetic_signs.json``) are a
  dominant-hand path relative to the face or body (lines, taps, circles, hops, wags), a hand shape
  (finger flexion and spread of the template hand, :data:`HANDSHAPES`, possibly changing or
  oscillating), a hand orientation and sometimes a second, mirrored hand. A few pairs are
  deliberately alike (:data:`SIMILAR_PAIRS`) so that the per-sign evaluation shows hard signs.
* **Clips** have skewed lengths (median about 18 frames, a tail beyond 100), frame numbers that do
  not start at 0, hands that MediaPipe loses (out of the image, runs of dropped frames), landmark
  noise; face and pose are present in every frame, as in the real files.

Everything is drawn from one ``numpy.random.Generator`` seeded with `seed`: the same seed gives
byte-identical ``train.csv`` and identical landmark arrays.
"""
from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from . import config, runs
from .dataset import SIGN_MAP_NAME, write_landmark_file
from .landmarks import N_DIMS, N_ROWS, TYPE_STARTS

GENERATOR_VERSION = 2
TEMPLATE_NAME = "synthetic_template.json"
DEFAULT_SIZE = dict(n_signs=25, n_participants=20, clips_per_sign=3)
LEFT_FRACTION = 0.35      # participants signing with MediaPipe's left_hand (real sample: 8 of 21)
SWITCH_FRACTION = 0.05    # clips signed with the other hand

FACE = slice(0, 468)
POSE0 = TYPE_STARTS["pose"]
HAND0 = {+1: TYPE_STARTS["left_hand"], -1: TYPE_STARTS["right_hand"]}
# Pose landmarks of one arm, "canonical" side = the signer's left = image right (+x):
# shoulder, elbow, wrist, pinky, index, thumb; the other arm is each index + 1.
ARM = np.array([11, 13, 15, 17, 19, 21])
LOWER_LIP = np.array([146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324])
FINGERS = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]])
# Where a sign starts: a face landmark (a pair: the one on image right, the one on image left; the
# dominant hand's side is used) or a point of the body (shoulder widths from the shoulders' middle).
FACE_ANCHORS = {"forehead": 151, "temple": (356, 127), "eye": (263, 33), "cheek": (280, 50), "nose": 4,
                "mouth": 13, "chin": 152}
BODY_ANCHORS = {"chest": (0.0, 0.42), "shoulder": (0.5, 0.05), "neutral": (0.35, 0.5),
                "neutral_high": (0.38, 0.12), "side_high": (0.62, -0.35)}
PATHS = ("line", "tap", "circle", "hops", "wag", "strokes", "hold")


# ---------------------------------------------------------------------------------------------
# Template: derived once from the real sample (benchmarks/synthetic.py --write-template), shipped
# as a small JSON file
# ---------------------------------------------------------------------------------------------
def _data_file(name: str) -> dict:
    """A JSON file of ``gislr_utils/data`` (shipped with the package)."""
    return json.loads(resources.files("gislr_utils").joinpath("data", name).read_text())


def load_template() -> dict:
    """The shipped template as numpy arrays (`face` [468,3], `pose_head` [11,3], `pose_body`
    [33,3], `rest_arm` [6,3], `hand` [21,3]) and its `stats`; `relaxed_hand` is the template hand
    with relaxed fingers, `rest_hand` the same hanging down (both of unit length)."""
    raw = _data_file(TEMPLATE_NAME)
    out = {k: np.asarray(raw[k], dtype=np.float64) for k in ("face", "pose_head", "pose_body", "rest_arm", "hand")}
    out["stats"] = {k: np.asarray(v, dtype=np.float64) for k, v in raw["stats"].items()}
    out["relaxed_hand"] = hand_shape(out["hand"], np.array([HANDSHAPES["relaxed"]]))[0]
    out["rest_hand"] = out["relaxed_hand"] @ _euler(np.pi + 0.3, 0.0, 0.0).T
    return out


# ---------------------------------------------------------------------------------------------
# Hand shapes and signs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignSpec:
    """One synthetic sign, described for the *dominant* hand on the signer's left (image right);
    offsets are in shoulder widths (x toward the dominant side, y down), angles in degrees."""
    name: str
    anchor: str                 # where the contact point starts (FACE_ or BODY_ANCHORS)
    contact: int                # hand landmark placed on the path (4 thumb tip, 8 index tip, 9 palm)
    path: str                   # see PATHS
    vec: tuple = (0.0, 0.0)     # direction and size of the movement
    cycles: float = 1.0         # taps, circle turns (negative: counter-clockwise), wags, hops
    shape: str = "flatB"
    shape_end: str | None = None
    shape_cycles: float = 0.0   # 0: change shape -> shape_end once; k: oscillate k times
    roll: tuple = (0.0, 0.0)    # in-plane angle of the fingers from "up" (start, end)
    yaw: tuple = (0.0, 0.0)     # palm turned sideways (0: palm to the camera)
    pitch: tuple = (0.0, 0.0)   # fingers tilted toward the camera
    pitch_cycles: float = 0.0   # nodding: pitch oscillates between start and end
    two_hands: bool = False     # the other hand mirrors the movement
    frames: int = 14            # duration at 30 fps for an average signer
    start: tuple = (0.0, 0.0)   # start offset from the anchor


# From gislr_utils/data/synthetic_signs.json: the hand shapes (flexion of thumb, index, middle,
# ring, pinky: 0 straight, 1 fully bent; finger spread: -1 together, 0 the template's, 1 wide), the
# hand-made signs (the fields that differ from SignSpec's defaults) and the pairs of them made
# alike on purpose (sign, sign, how; chapter 5 looks for them among the most confused signs).
_SIGNS = _data_file("synthetic_signs.json")
HANDSHAPES = {k: tuple(v) for k, v in _SIGNS["handshapes"].items()}
CATALOGUE: tuple[SignSpec, ...] = tuple(
    SignSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in sign.items()}) for sign in _SIGNS["signs"])
SIMILAR_PAIRS = tuple(tuple(pair) for pair in _SIGNS["similar_pairs"])


# ---------------------------------------------------------------------------------------------
# Geometry (all vectorised over frames)
# ---------------------------------------------------------------------------------------------
def _rot2(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate 2-D vectors v [..., k, 2] by angle [...] (radians, image coordinates)."""
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] about unit `axis` [3] by `angle` [...] (Rodrigues)."""
    k = np.asarray(axis, dtype=np.float64)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    c, s = np.cos(angle)[..., None, None], np.sin(angle)[..., None, None]
    return c * np.eye(3) + s * kx + (1 - c) * np.outer(k, k)


def _euler(roll, yaw, pitch) -> np.ndarray:
    """R = Rz(roll) Ry(yaw) Rx(pitch), [..., 3, 3]; angles in radians."""
    return _axis_rotation((0, 0, 1), roll) @ _axis_rotation((0, 1, 0), yaw) @ _axis_rotation((1, 0, 0), pitch)


def hand_shape(template: np.ndarray, flex: np.ndarray) -> np.ndarray:
    """Bend the template hand [21,3] (wrist at 0, fingers up, unit length) by `flex` [F, 6]
    (thumb, index, middle, ring, pinky flexion in 0..1, spread in -1..1) -> [F, 21, 3].

    Long fingers spread about the palm normal at their base, then bend toward the palm (the
    camera side in the template) at the three joints; the thumb swings in front of the palm."""
    flex = np.asarray(flex, dtype=np.float64)
    h = np.broadcast_to(template, (flex.shape[0], 21, 3)).copy()
    pts = h[:, FINGERS[1:]]                                            # [F, 4, 4, 3]
    ang = flex[:, 5:6] * np.radians([-9.0, 0.0, 8.0, 16.0])            # spread, [F, 4]
    c, s = np.cos(ang)[..., None], np.sin(ang)[..., None]
    rel = pts[:, :, 1:] - pts[:, :, :1]
    pts[:, :, 1:, 0] = pts[:, :, :1, 0] + c * rel[..., 0] - s * rel[..., 1]
    pts[:, :, 1:, 1] = pts[:, :, :1, 1] + s * rel[..., 0] + c * rel[..., 1]
    for j, deg in enumerate((75.0, 95.0, 65.0)):                       # MCP, PIP, DIP
        ang = np.radians(deg) * flex[:, 1:5]
        c, s = np.cos(ang)[..., None], np.sin(ang)[..., None]
        rel = pts[:, :, j + 1:] - pts[:, :, j:j + 1]
        pts[:, :, j + 1:, 1] = pts[:, :, j:j + 1, 1] + c * rel[..., 1] - s * rel[..., 2]
        pts[:, :, j + 1:, 2] = pts[:, :, j:j + 1, 2] + s * rel[..., 1] + c * rel[..., 2]
    h[:, FINGERS[1:]] = pts
    idx = FINGERS[0]
    for j, deg in enumerate((40.0, 35.0, 30.0)):
        rot = _axis_rotation((0, 1, 0), -np.radians(deg) * flex[:, 0]) @ _axis_rotation(
            (1, 0, 0), np.radians(deg / 2) * flex[:, 0])
        base = h[:, idx[j]:idx[j] + 1]
        h[:, idx[j + 1:]] = base + (h[:, idx[j + 1:]] - base) @ rot.transpose(0, 2, 1)
    return h


def _path(spec: SignSpec, ph: np.ndarray) -> np.ndarray:
    """Offset [F, 2] (shoulder widths, canonical side) of the contact point at phases `ph`."""
    v, t = np.asarray(spec.vec, dtype=np.float64), ph[:, None]
    bumps = np.abs(np.sin(np.pi * spec.cycles * t))             # taps and hops
    if spec.path == "line":
        return v * t
    if spec.path == "tap":
        return v * bumps
    if spec.path == "strokes":
        return v * np.minimum(1.0, (abs(spec.cycles) * t) % 1.0 * 1.15)
    if spec.path == "hops":
        perp = np.array([v[1], -v[0]]) / (np.linalg.norm(v) + 1e-9)
        return v * t + 0.12 * (-perp if perp[1] > 0 else perp) * bumps       # hop upward
    if spec.path == "wag":
        return v * np.sin(2 * np.pi * spec.cycles * t)
    if spec.path == "circle":
        r, a0 = float(np.linalg.norm(v)) or 0.1, -np.pi / 2
        a = a0 + 2 * np.pi * spec.cycles * t[:, 0]
        return r * np.stack([np.cos(a) - np.cos(a0), np.sin(a) - np.sin(a0)], axis=-1)
    if spec.path == "hold":
        return np.zeros((len(ph), 2))
    raise ValueError(f"unknown path {spec.path!r} in sign {spec.name!r}; choose one of {PATHS}")


def _track(start, end, ph, cycles=0.0) -> np.ndarray:
    """From `start` to `end` (numbers or vectors) over the phases `ph` [F] (cycles=0), or back and
    forth `cycles` times -> [F] or [F, len(start)]."""
    w = ph if cycles == 0 else (1 - np.cos(2 * np.pi * cycles * ph)) / 2
    return np.add(start, np.multiply.outer(w, np.subtract(end, start)))


def _smooth_noise(rng, n, scale, smooth=4.0, dims=()):
    """Slowly varying noise [n, *dims]: Gaussian random walk, low-passed, std about `scale`."""
    x = rng.normal(0.0, 1.0, (n,) + tuple(dims))
    alpha = 1.0 / smooth
    out = np.empty_like(x)
    acc = x[0]
    for i in range(n):                               # short clips: a Python loop is fine
        acc = out[i] = (1 - alpha) * acc + alpha * x[i]
    return out * scale * math.sqrt(2 * smooth)


def _markov_presence(rng, n, p_drop, p_recover, p_start=0.85):
    """Runs of present/missing frames as MediaPipe produces them (bool [n])."""
    u = rng.random(n)
    out = np.empty(n, dtype=bool)
    out[0] = u[0] < p_start
    for i in range(1, n):
        out[i] = (u[i] >= p_drop) if out[i - 1] else (u[i] < p_recover)
    return out


def _in_image(h: np.ndarray) -> np.ndarray:
    """MediaPipe finds a hand only when most of it is inside the image: [F, 21, 3] -> bool [F]."""
    inside = (h[..., 0] > 0) & (h[..., 0] < 1) & (h[..., 1] > 0) & (h[..., 1] < 1)
    return (inside.mean(axis=1) >= 0.8) & (h[:, 0, 1] < 1.0)


def _elbow(shoulder, wrist, upper_arm, side):
    """Elbow [F, 2] of an arm seen from the front: the upper arm (projected length `upper_arm`)
    turns from its resting direction (out and down, where the real sample's elbows are) part of
    the way toward the wrist, through the outer side (never across the body), a little when
    the hand goes up (the elbow stays low and out, as in the real sample), more when it goes
    down and in."""
    rel = (wrist - shoulder) * np.array([side, 1.0])      # canonical: +x = away from the body
    a_wrist = np.arctan2(rel[:, 1], rel[:, 0])
    a_rest = math.atan2(0.6, 0.45)                         # image y points down
    turn = (a_wrist - a_rest + 1.5 * np.pi) % (2 * np.pi) - 1.5 * np.pi   # in [-270, 90) deg
    a = a_rest + np.where(turn < 0, 0.12, 0.4) * turn
    return shoulder + upper_arm * np.stack([side * np.cos(a), np.sin(a)], axis=-1)


# ---------------------------------------------------------------------------------------------
# Participants and clips
# ---------------------------------------------------------------------------------------------
def _stratified_normal(rng, n, mean=0.0, std=1.0):
    """n normal draws, one from each 1/n quantile, shuffled: small sets stay representative."""
    u = (rng.permutation(n) + rng.random(n)) / n
    z = np.array([NormalDist().inv_cdf(min(max(v, 1e-9), 1 - 1e-9)) for v in u])
    return mean + std * z


def _participants(rng, n, tpl):
    """Each synthetic participant's body, camera placement, signing style and tracking quality,
    drawn around the real sample's statistics (template `stats`)."""
    st = tpl["stats"]
    n_left = int(round(LEFT_FRACTION * n))
    if n >= 2:
        n_left = min(max(n_left, 1), n - 1)          # both kinds present in any set of 2+
    side = np.full(n, -1)
    side[rng.permutation(n)[:n_left]] = +1           # +1: MediaPipe's left_hand dominant
    ids = np.sort(rng.choice(np.arange(1000, 65000), n, replace=False))
    norm = lambda mean, std: _stratified_normal(rng, n, mean, std)  # noqa: E731
    return pd.DataFrame({                            # drawn in this order
        "participant_id": ids, "dominant": np.where(side > 0, "left", "right"), "side": side,
        "mid_x": norm(st["mid_mean"][0], st["mid_std"][0] * 0.8),
        "mid_y": norm(st["mid_mean"][1], st["mid_std"][1] * 0.8),
        "shoulder_width": np.clip(norm(st["shoulder_width_mean"], st["shoulder_width_std"]), 0.4, 0.72),
        "face_dx": norm(st["face_offset_mean"][0], st["face_offset_std"][0]),
        "face_dy": norm(st["face_offset_mean"][1], st["face_offset_std"][1]),
        "face_scale": norm(st["face_scale_mean"], st["face_scale_std"] * 0.8),
        "hand_length": np.clip(norm(st["hand_length_mean"], 0.025), 0.24, 0.4),
        "arm_scale": norm(1.0, 0.05), "speed": np.exp(norm(0.0, 0.25)),   # speed > 1: slower (more frames)
        "amplitude": norm(1.0, 0.10), "ease": rng.uniform(-0.35, 0.35, n),
        "drop": rng.uniform(0.02, 0.11, n), "recover": rng.uniform(0.3, 0.6, n),
        "jitter": rng.uniform(0.6, 1.4, n), "rest_y": rng.uniform(0.97, 1.06, n),
        "pose_z": norm(0.0, st["pose_z_clip_std"]), "style_x": norm(0.0, 0.04), "style_y": norm(0.0, 0.04),
    })


def _base_lengths(rng, n):
    """Clip lengths before the signer's speed: lognormal with median 18 frames and a tail of a few
    hundred (mean about 31, as in GISLR), drawn *stratified* (one draw per 1/n quantile, shuffled)
    so that even a small set has its share of short clips and of clips longer than 64 and 100."""
    return np.exp(_stratified_normal(rng, n, math.log(18.0), 1.05))


def _first_frame(rng):
    if rng.random() < 0.1:
        return int(rng.integers(0, 2))
    return int(np.clip(round(math.exp(rng.normal(math.log(20.0), 0.55))), 1, 200))


def _timeline(rng, spec: SignSpec, p, base_length: float):
    """A clip's frames: their number n, the sign's phase (0..1) in each, and `blend` (0: hands
    down, 1: signing); the sign is active in frames ``start`` to ``start + act - 1``.

    Short clips hold just the (quick) sign; longer ones also hold pauses with the hands down,
    the longest a repeated sign (real clips over 80 frames miss the hand in ~2/3 of frames)."""
    speed = p.speed * math.exp(rng.normal(0, 0.12))
    n = int(np.clip(round(base_length * speed ** 0.5), 3, 400))
    dur = max(4, int(round(spec.frames * speed)))
    if n <= 1.3 * dur:
        start, act, reps = 0, n, 1
        p0, p1 = rng.uniform(0, 0.1), rng.uniform(0.9, 1.0)
    else:
        reps = 1 + int(n > 4 * dur) + int(n > 8 * dur)
        share = rng.uniform(0.55, 0.9) if n < 60 else rng.uniform(0.25, 0.55)
        act = min(n, max(dur * reps, int(round(n * share))))
        start, p0, p1 = int(rng.integers(0, n - act + 1)), 0.0, 1.0
    t = np.linspace(0.0, 1.0, act)
    t = t + p.ease * np.sin(2 * np.pi * t) / (2 * np.pi)
    ph_act = p0 + (p1 - p0) * ((t * reps) % 1.0 if reps > 1 else t)
    if reps > 1:
        ph_act[-1] = p1
    ph = ph_act[np.clip(np.arange(n) - start, 0, act - 1)]         # held before and after
    k = max(2, int(round(4 * speed)))                                # transition frames
    blend = np.clip(np.minimum(np.arange(n) - (start - k), (start + act - 1 + k) - np.arange(n)) / k, 0, 1)
    blend = blend * blend * (3 - 2 * blend)          # smoothstep: 0 hands down, 1 signing
    if start == 0 and act == n:
        blend[:] = 1.0
    return n, ph, blend, start, act


@dataclass
class _Body:
    """One clip's signer placed in the image (`_place_body`): what hands and arms are drawn from."""
    frames: np.ndarray          # [n, 543, 3] float64, written in place
    pose: np.ndarray            # [n, 33, 3]: a view of the frames' pose rows
    p: object                   # the participant (a row of `_participants`)
    tpl: dict
    sw: float                   # shoulder width in the image
    mid: np.ndarray             # [n, 2] the middle of the shoulders
    pz: float                   # depth of the pose
    hand_len: float = 0.0

    def to_img(self, v_body, side):              # body units on `side` -> image offset
        return np.asarray(v_body) * np.array([side, 1.0]) * self.sw

    def anchor(self, name, side):                # image position [n, 2] of an anchor on `side`
        if name in BODY_ANCHORS:
            return self.mid + self.to_img(BODY_ANCHORS[name], side)
        i = FACE_ANCHORS[name]
        if isinstance(i, tuple):                 # a pair: the one on the hand's side
            i = i[0] if side > 0 else i[1]
        return self.frames[:, i, :2]

    def resting(self, side):                     # wrist [n, 2] and hand [n, 21, 3] hanging down
        n = len(self.frames)
        wrist = self.mid + self.to_img(self.tpl["rest_arm"][2, :2], side)
        wrist[:, 1] = np.maximum(wrist[:, 1], self.p.rest_y)           # below the image
        local = self.tpl["rest_hand"] * self.hand_len * np.array([side, 1.0, 1.0])
        return wrist, np.concatenate([wrist[:, None] + local[None, :, :2],
                                      np.broadcast_to(local[:, 2:], (n, 21, 1))], axis=-1)

    def show_hand(self, side, hand, seen):       # the hand's rows: NaN where MediaPipe lost it
        self.frames[:, HAND0[side]:HAND0[side] + 21] = np.where(seen[:, None, None], hand, np.nan)


def _place_body(rng, p, tpl, n: int) -> _Body:
    """Face and pose of a clip of n frames: the body placed in the image, per clip and per frame;
    the face template rotated (roll, yaw, pitch), scaled and placed, its mouth opening and
    closing; the pose's head points riding with the face, its body from the template."""
    st = tpl["stats"]
    sw = p.shoulder_width * rng.normal(1.0, 0.04)
    mid_t = np.array([p.mid_x, p.mid_y]) + rng.normal(0, 0.02, 2) + _smooth_noise(rng, n, 0.004, dims=(2,))
    frames = np.empty((n, N_ROWS, N_DIMS))
    fscale = p.face_scale * sw
    head = (np.array([p.face_dx, p.face_dy]) + _smooth_noise(rng, n, st["head_motion_std"] * 0.6,
                                                             dims=(2,))) * sw + mid_t
    roll = rng.normal(0, st["head_roll_std"]) + _smooth_noise(rng, n, st["head_roll_frame_std"])
    yaw = rng.normal(0, 0.12) + _smooth_noise(rng, n, 0.03)
    pitch = rng.normal(0, 0.08) + _smooth_noise(rng, n, 0.03)
    rot = _euler(roll, yaw, pitch)                                  # [n, 3, 3]
    face = np.broadcast_to(tpl["face"], (n, 468, 3)).copy()
    mouth = np.clip(_smooth_noise(rng, n, 1.0, smooth=3.0), 0, None) * rng.uniform(0, 0.05)
    face[:, LOWER_LIP, 1] += mouth[:, None]
    face = (face @ rot.transpose(0, 2, 1)) * fscale
    face[..., :2] += head[:, None]
    face[..., 2] += st["face_z_mean"]
    face += rng.normal(0, 0.0008 * p.jitter, face.shape)
    frames[:, FACE] = face
    pose = frames[:, POSE0:POSE0 + 33]                              # a view: written in place
    body = _Body(frames, pose, p, tpl, sw, mid_t, p.pose_z + rng.normal(0, 0.1))
    pose[:, :, :2] = tpl["pose_body"][:, :2] * sw + mid_t[:, None]
    pose[:, :11, :2] = (tpl["pose_head"][:, :2] @ rot[:, :2, :2].transpose(0, 2, 1)) * fscale + head[:, None]
    pose[:, :, 2] = tpl["pose_body"][:, 2] + body.pz
    pose[:, :, :2] += rng.normal(0, 0.003 * p.jitter, (n, 33, 2))
    pose[:, :, 2] += rng.normal(0, 0.04, (n, 33))
    pose[:, 23:, :2] += rng.normal(0, 0.02, (n, 10, 2))             # legs: out of the image, vague
    return body


def _signing_hand(rng, spec: SignSpec, body: _Body, ph, blend, side, second: bool, how) -> np.ndarray:
    """The hand [n, 21, 3] on `side` signing `spec` at phases `ph`, blended with the resting hand
    where `blend` < 1; `how` is the clip's (amplitude, turn, style) of the movement."""
    amp, turn, style = how
    n, jitter = len(ph), body.p.jitter
    off = _rot2(_path(spec, ph), turn) * amp + style + spec.start  # [n, 2] body units
    if second:
        off = off + rng.normal(0, 0.03, 2)
    contact_pt = body.anchor(spec.anchor, side) + body.to_img(off, side)
    flex = _track(HANDSHAPES[spec.shape], HANDSHAPES[spec.shape_end or spec.shape], ph,
                  spec.shape_cycles) + rng.normal(0, 0.06, 6)
    flex[:, :5] = np.clip(flex[:, :5] + rng.normal(0, 0.03, (n, 5)), 0, 1)
    r = _track(*np.radians(spec.roll), ph) + rng.normal(0, np.radians(8)) + rng.normal(0, 0.04, n)
    y = _track(*np.radians(spec.yaw), ph) + rng.normal(0, np.radians(8))
    pi = _track(*np.radians(spec.pitch), ph, spec.pitch_cycles) + rng.normal(0, np.radians(8))
    local = hand_shape(body.tpl["hand"], flex) @ _euler(r, y, pi).transpose(0, 2, 1)
    local = local * body.hand_len * np.array([side, 1.0, 1.0])         # mirrored on the right
    h_sign = contact_pt[:, None] - local[:, spec.contact:spec.contact + 1, :2] + local[..., :2]
    b = blend[:, None, None]
    hand = b * np.concatenate([h_sign, local[..., 2:]], axis=-1) + (1 - b) * body.resting(side)[1]
    hand[..., :2] += rng.normal(0, 0.003 * jitter, (n, 1, 2)) + rng.normal(0, 0.0025 * jitter, (n, 21, 2))
    hand[..., 2] += rng.normal(0, 0.004, (n, 21))
    return hand


def _arm(rng, body: _Body, hand, side) -> np.ndarray:
    """Place the arm of `side` (shoulder fixed, wrist at the hand, elbow by inverse kinematics)
    and return its z (elbow, wrist, pinky, index, thumb), which grows with how high it is lifted."""
    st, pose, n = body.tpl["stats"], body.pose, len(hand)
    sh = pose[:, 11 if side > 0 else 12, :2]
    wrist = hand[:, 0, :2] + rng.normal(0, 0.012, 2)
    rest_w = body.resting(side)[0]
    lift = np.clip((rest_w[:, 1] - wrist[:, 1]) / (rest_w[:, 1] - sh[:, 1]), 0, 1)
    upper_arm = 0.85 * (st["upper_arm"] * body.p.arm_scale * body.sw)
    arm = np.stack([_elbow(sh, wrist, upper_arm, side), wrist, (hand[:, 17, :2] + hand[:, 18, :2]) / 2,
                    hand[:, 5, :2], hand[:, 2, :2]], axis=1) + rng.normal(0, 0.015, (n, 5, 2))
    pose[:, ARM[1:] + (side < 0), :2] = arm
    return (st["rest_arm_z"] + (st["active_arm_z"] - st["rest_arm_z"]) * lift[:, None])[:, 1:] + body.pz


def _resting_arm(rng, body: _Body, side, no_hands: bool) -> np.ndarray:
    """The other hand of a one-handed sign hangs below the image, now and then raised into view
    for a few frames; its arm rests. Returns the arm's z."""
    n, tpl, jitter = len(body.frames), body.tpl, body.p.jitter
    rest_w, hand = body.resting(side)
    hand[..., :2] += rng.normal(0, 0.004 * jitter, (n, 21, 2))
    seen = np.zeros(n, dtype=bool)
    if rng.random() < 0.06 and n >= 3:           # occasionally raised into view briefly
        a0 = int(rng.integers(0, n - 1))
        a1 = min(n, a0 + int(rng.integers(1, 6)))
        up = tpl["relaxed_hand"] * body.hand_len * np.array([side, 1.0, 1.0])
        wrist = rest_w[a0] - np.array([0.0, rest_w[a0, 1] - rng.uniform(0.85, 0.95)])
        hand[a0:a1, :, :2] = wrist + up[:, :2] + rng.normal(0, 0.004 * jitter, (a1 - a0, 21, 2))
        hand[a0:a1, :, 2] = up[:, 2]
        seen[a0:a1] = True
    body.show_hand(side, hand, seen & (not no_hands))
    body.pose[:, ARM[1:] + (side < 0), :2] = (body.mid[:, None] + body.to_img(tpl["rest_arm"][1:, :2], side)
                                              + rng.normal(0, 0.01, (n, 5, 2)))
    return tpl["stats"]["rest_arm_z"][1:] + body.pz


def _clip(rng, spec: SignSpec, p, tpl, base_length: float, no_hands: bool, switch: bool) -> np.ndarray:
    """Frames [n, 543, 3] (float32, NaN for missing hands) of one clip of `spec` by participant p:
    its timeline, the body, the signing hand(s) and the frames MediaPipe finds them in, the arms."""
    s = -p.side if switch else p.side                # +1: dominant hand on image right
    n, ph, blend, start, act = _timeline(rng, spec, p, base_length)
    body = _place_body(rng, p, tpl, n)
    how = (p.amplitude * rng.normal(1.0, 0.06), rng.normal(0, np.radians(8)))
    body.hand_len = p.hand_length * body.sw * rng.normal(1.0, 0.03)
    how += (np.array([p.style_x, p.style_y]) + rng.normal(0, 0.025, 2),)
    arm_z = {}                                   # z of elbow, wrist, pinky, index, thumb per side
    for second, side in enumerate([s, -s] if spec.two_hands else [s]):
        hand = _signing_hand(rng, spec, body, ph, blend, side, bool(second), how)
        # Which frames MediaPipe finds this hand in.
        seen = _markov_presence(rng, n, p.drop * (1.6 if second else 1.0), p.recover) & _in_image(hand)
        seen &= (blend > 0.99) | (rng.random(n) < 0.3)           # fast transitions: motion blur
        if not seen[start:start + act].any() and not no_hands and not second:
            seen[start + act // 2] = True
        body.show_hand(side, hand, seen & (not no_hands))
        arm_z[side] = _arm(rng, body, hand, side)
    if not spec.two_hands:                       # one-handed sign: the other hand rests
        arm_z[-s] = _resting_arm(rng, body, -s, no_hands)
    for side, z in arm_z.items():
        body.pose[:, ARM[1:] + (side < 0), 2] = z + rng.normal(0, 0.05, (n, 5))
    return body.frames.astype(np.float32)


def _unique_ints(rng, n, low, high):
    out = np.unique(rng.integers(low, high, n))
    while len(out) < n:
        out = np.unique(np.concatenate([out, rng.integers(low, high, n - len(out))]))
    return rng.permutation(out)


def generate(out_dir, seed: int = 0, n_signs: int = DEFAULT_SIZE["n_signs"],
             n_participants: int = DEFAULT_SIZE["n_participants"],
             clips_per_sign: int = DEFAULT_SIZE["clips_per_sign"], no_hand_fraction: float = 0.002,
             overwrite: bool = False, progress: bool = False) -> Path:
    """Generate a synthetic GISLR data set into `out_dir` and return it (chapter 1).

    Writes ``train.csv``, ``sign_to_prediction_index_map.json`` (the full 250-sign map),
    ``train_landmark_files/<participant_id>/<sequence_id>.parquet`` and
    ``synthetic_participants.csv`` (each participant's drawn properties, for teaching). Sizes:
    the first `n_signs` (2 to 26) signs of :data:`CATALOGUE`, `n_participants` participants,
    `clips_per_sign` clips of every sign per participant. :data:`LEFT_FRACTION` of the
    participants sign with MediaPipe's ``left_hand``, :data:`SWITCH_FRACTION` of clips use the
    other hand, and `no_hand_fraction` of clips have no hand at all (such clips exist in the
    real data too). Same arguments -> byte-identical files. `out_dir` must be empty unless
    `overwrite`; `progress` shows a progress bar. This writes in place: :func:`ensure_data_dir`
    makes the book's set atomically.
    """
    out_dir = Path(out_dir)
    if not 2 <= int(n_signs) <= len(CATALOGUE):
        raise ValueError(f"n_signs={n_signs} must be between 2 and {len(CATALOGUE)} (the signs of CATALOGUE)")
    for name, v in (("n_participants", n_participants), ("clips_per_sign", clips_per_sign)):
        if int(v) < 1:
            raise ValueError(f"{name}={v} must be at least 1")
    if not 0.0 <= no_hand_fraction <= 1.0:
        raise ValueError(f"no_hand_fraction={no_hand_fraction} must be between 0 and 1")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir}: directory is not empty (pass overwrite=True)")
        shutil.rmtree(out_dir)

    rng = np.random.default_rng(seed)
    tpl = load_template()
    specs = CATALOGUE[:int(n_signs)]
    people = _participants(rng, int(n_participants), tpl)
    total = len(people) * len(specs) * int(clips_per_sign)
    seq_ids = _unique_ints(rng, total, 10 ** 6, 2 ** 32 - 1)
    plan = np.repeat(np.arange(len(people) * len(specs)), int(clips_per_sign))  # participant * n_signs + sign
    n_none = int(round(no_hand_fraction * total))
    none_clips = set(rng.choice(total, n_none, replace=False).tolist()) if n_none else set()
    switched = rng.random(total) < SWITCH_FRACTION
    lengths = _base_lengths(rng, total)

    records = list(people.itertuples(index=False))
    rows, writes, clips = [], [], range(total)
    if progress:
        from tqdm import tqdm
        clips = tqdm(clips, desc="synthetic clips", unit="clip")
    # Clips are drawn in order in this thread (determinism); a second thread writes the files
    # (pyarrow releases the GIL), so drawing and writing overlap.
    with ThreadPoolExecutor(max_workers=1) as pool:
        for c in clips:
            p, spec = records[plan[c] // len(specs)], specs[plan[c] % len(specs)]
            frames = _clip(rng, spec, p, tpl, lengths[c], c in none_clips, switched[c])
            rel = f"train_landmark_files/{p.participant_id}/{seq_ids[c]}.parquet"
            writes.append(pool.submit(write_landmark_file, out_dir / rel, frames, _first_frame(rng)))
            if c >= 16:
                writes[c - 16].result()          # at most 16 clips wait in memory; a write's error stops here
            rows.append((rel, p.participant_id, seq_ids[c], spec.name))
        for w in writes[-16:]:
            w.result()
    train = pd.DataFrame(rows, columns=["path", "participant_id", "sequence_id", "sign"])
    train.iloc[rng.permutation(total)].to_csv(out_dir / "train.csv", index=False, lineterminator="\n")
    (out_dir / SIGN_MAP_NAME).write_text(json.dumps(config.SIGN_TO_INDEX))
    people.drop(columns=["side"]).round(4).to_csv(out_dir / "synthetic_participants.csv",
                                                  index=False, lineterminator="\n")
    return out_dir


# ---------------------------------------------------------------------------------------------
# The book's default set, made once per artifacts folder (the rules of `runs`)
# ---------------------------------------------------------------------------------------------
def ensure_data_dir(artifacts_dir=None, seed: int = 0) -> Path:
    """The default synthetic set ``<artifacts_dir>/synthetic_seed<seed>/``, generated first unless
    a complete copy of this generator version, seed and size is there (chapters call it through
    `book.setup` when ``data_dir`` is None).

    It follows the rules of every artefact (:mod:`gislr_utils.runs`): generated into a temporary
    folder and renamed into place when complete, with a manifest (written last) of what it was
    made from and the checksums of ``train.csv`` and the sign map; an outdated, incomplete or
    edited copy is generated again, with a line saying why.
    """
    root = Path(artifacts_dir) if artifacts_dir is not None else config.default_artifacts_dir()
    target = root / f"synthetic_seed{seed}"
    spec = {"artefact": "synthetic data set", "generator_version": GENERATOR_VERSION, "seed": int(seed),
            **DEFAULT_SIZE}
    why = runs.check(target, spec)
    if why is not None:
        if why != "missing":
            print(f"{config.show_path(target)}: {why}; generating it again")
        runs.clean_stale(root)
        with runs.atomic_path(target) as tmp:
            generate(tmp, seed=seed, **DEFAULT_SIZE)
            runs.write_manifest(tmp, spec, files=["train.csv", SIGN_MAP_NAME])
    return target
