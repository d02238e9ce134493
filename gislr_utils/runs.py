"""One mechanism for every cached artefact: keys, manifests, atomic writes, locks, stale temporaries.

Everything the chapters keep in ``artifacts_dir`` (prepared arrays, statistics, trained models,
histories, splits, metrics, TFLite files) follows the same rules:

* **Key**: an artefact is described by a *spec*, a JSON-able dict of everything it was made from
  (data fingerprint, settings including ``epochs``, model options, seed, statistics fingerprint, the
  keys of upstream artefacts). `key_of` hashes its canonical JSON.
* **Manifest**: `write_manifest` stores ``{"key", "spec", ...}`` beside the artefact
  (``<name>.manifest.json``, or a file of the caller's choice such as a run's ``train_config.json``).
  `check_manifest` compares a stored manifest with the spec of what is wanted now and says *what
  changed* (``"settings.epochs: 3 -> 10"``), so that a stale artefact is rebuilt with a message
  instead of silently reused.
* **Atomic writes**: `atomic_path` yields a temporary name in the same folder and renames it over
  the target (``os.replace``) only when the write succeeded, so a reader never sees a half-written
  file and a killed run leaves no truncated artefact.
* **One writer per folder**: `FolderLock` takes an exclusive lock on ``<folder>/.lock`` while a
  run writes there; a second writer gets `FolderInUseError` naming the folder and the process
  holding it, instead of two runs overwriting each other's files. Readers take no lock (every file
  is replaced atomically), so a finished run in a read-only folder can be read.
* **Stale temporaries**: temporary names carry the host and process id of their writer;
  `clean_stale_temporaries` removes those whose process is gone (or, from another host or an older
  version of the package, that nobody touched for hours).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

MANIFEST_SUFFIX = ".manifest.json"
# a temporary that nobody touched for this long is stale even when its owner cannot be checked
STALE_AFTER_S = 6 * 3600
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"
_TMP_RE = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp")
# names of earlier versions: prepare_dataset's ".<key>.<uuid>.tmp", the synthetic set's ".<name>.tmp<pid>"
_LEGACY_TMP_RE = re.compile(r"^\..+\.(?:[0-9a-f]{32}\.tmp|tmp(?P<pid>\d+))$")


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock (a run is training or writing there)."""


class ArtefactError(RuntimeError):
    """A saved artefact is damaged (truncated, empty, unreadable); the message names the file."""


# ----------------------------------------------------------------------------------------------
# Keys and manifests
# ----------------------------------------------------------------------------------------------
def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def canonical(spec) -> dict:
    """`spec` as plain JSON values (numpy scalars -> Python), so that saved and new specs compare."""
    return json.loads(json.dumps(spec, sort_keys=True, default=_json_default))


def key_of(spec) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of `spec`."""
    text = json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def hash_arrays(*arrays) -> str:
    """16 hex digits of the SHA-256 of arrays' dtype, shape and bytes (all of them, in order)."""
    import numpy as np
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        flat = a.reshape(-1) if a.ndim else a.reshape(1)
        step = max(1, (1 << 24) // max(1, a.itemsize))          # 16 MB at a time: no second copy
        for i in range(0, flat.size, step):
            h.update(np.ascontiguousarray(flat[i:i + step]).tobytes())
    return h.hexdigest()[:16]


def manifest_path(artifact) -> Path:
    """``<artifact>.manifest.json`` beside the artefact."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def write_manifest(path, spec, **extra) -> dict:
    """Write ``{"key": key_of(spec), "spec": spec, **extra}`` to `path` atomically; returns it."""
    record = {"key": key_of(spec), "spec": canonical(spec), **canonical(extra)}
    write_text(path, json.dumps(record, indent=2, sort_keys=False))
    return record


def read_manifest(path) -> dict | None:
    """The manifest at `path`, or None when it is missing or unreadable (a manifest is written last)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def differences(old, new, prefix: str = "", limit: int = 6) -> list[str]:
    """What differs between two specs, as ``"a.b: old -> new"`` lines (at most `limit`)."""
    out: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{name}: (absent) -> {_short(new[k])}")
            elif k not in new:
                out.append(f"{name}: {_short(old[k])} -> (absent)")
            else:
                out += differences(old[k], new[k], name, limit)
    elif old != new:
        out.append(f"{prefix or 'value'}: {_short(old)} -> {_short(new)}")
    return out[:limit]


def _short(v) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def check_manifest(path, spec) -> str | None:
    """None when the manifest at `path` records exactly `spec`; otherwise why not (for messages)."""
    saved = read_manifest(path)
    if saved is None:
        return f"no manifest {Path(path).name}"
    spec = canonical(spec)
    if saved.get("key") == key_of(spec) and saved.get("spec") == spec:
        return None
    changed = differences(saved.get("spec", {}), spec)
    return "made from other inputs (" + "; ".join(changed or ["key differs"]) + ")"


# ----------------------------------------------------------------------------------------------
# Atomic writes and temporaries
# ----------------------------------------------------------------------------------------------
def temp_path(path) -> Path:
    """A hidden temporary name beside `path`: ``.<name>.<host>-<pid>-<random>.tmp<suffix>``."""
    path = Path(path)
    tag = f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # keep the suffix a writer may insist on (Keras: .keras, .weights.h5; NumPy: .npy)
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    return path.with_name(f".{path.name}.{tag}.tmp{suffix}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write; on success it replaces `path` (``os.replace``), else it is removed.

    Works for files and folders (a folder replaces a missing or older folder of that name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        try:
            yield tmp
        except OSError as err:     # e.g. "No space left on device": say which file
            if err.filename is None and str(path) not in str(err):
                raise OSError(err.errno, f"{path}: {err.strerror or err}") from err
            raise
        if tmp.is_dir() and path.is_dir():
            old = temp_path(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":      # os.kill(pid, 0) would send Ctrl-C there: keep the temporary
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True          # exists (another user's) or cannot tell: keep its temporary
    return True


def _last_touched(path: Path) -> float:
    try:
        times = [path.stat().st_mtime]
        if path.is_dir():
            times += [p.stat().st_mtime for p in path.rglob("*")]
        return max(times)
    except OSError:
        return time.time()


def clean_stale_temporaries(folder, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove temporaries in `folder` left by writers that were killed; returns what was removed.

    A temporary (`temp_path` name) is stale when its writer ran on this host and its process is
    gone (also the older synthetic-set form ``.<name>.tmp<pid>``), or when nobody touched it for
    `stale_after_s` seconds (a writer on another host, or the older form ``.<key>.<uuid>.tmp``).
    Temporaries of running writers are kept.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.iterdir():
        m = _TMP_RE.match(p.name) or _LEGACY_TMP_RE.match(p.name)
        if m is None:
            continue
        pid = m.groupdict().get("pid")
        if pid is not None and m.groupdict().get("host", _HOST) == _HOST:
            stale = int(pid) != os.getpid() and not _pid_alive(int(pid))
        else:
            stale = now - _last_touched(p) > stale_after_s
        if stale:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# ----------------------------------------------------------------------------------------------
# One run per folder
# ----------------------------------------------------------------------------------------------
class FolderLock:
    """Lock `folder` while a run writes there: one writer at a time (readers take no lock).

    Uses ``fcntl.flock`` on ``<folder>/.lock`` (released by the OS when the process dies, so a killed
    run leaves no stale lock); on Windows ``msvcrt.locking``. Never waits: when another process
    holds it, `FolderInUseError` names that process (``.lock.info``, written by the holder) and
    the folder.
    """

    def __init__(self, folder, what: str = "a run"):
        self.folder, self.what = Path(folder), what

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(self._fd)
        except OSError:
            os.close(self._fd)
            holder = _read_holder(self.folder / ".lock.info")
            raise FolderInUseError(
                f"{self.folder} is in use by another process{holder}: it is training or writing "
                f"there. Wait for it to finish, or give {self.what} another artifacts_dir."
            ) from None
        info = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}"
        with contextlib.suppress(OSError):
            write_text(self.folder / ".lock.info", info)
        return self

    def __exit__(self, *exc):
        _unlock(self._fd)
        os.close(self._fd)
        return False


def _read_holder(path: Path) -> str:
    try:
        return f" ({path.read_text().strip()})"
    except OSError:
        return ""


try:
    import fcntl

    def _lock(fd):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd):
        fcntl.flock(fd, fcntl.LOCK_UN)
except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _lock(fd):
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd):
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
