"""Artefacts on disk: atomic writes and one record format, the manifest (chapter 4).

Everything the chapters keep in ``artifacts_dir`` is a folder -- the synthetic data set, the
prepared arrays, a training run -- with a ``manifest.json`` written last:

* ``spec``: everything the folder's bytes depend on (settings, the data set's key, code
  versions), as plain JSON; ``key`` is a hash of it;
* ``files``: the size and SHA-256 of every file the manifest vouches for.

`check` compares a folder with the spec wanted now and says *what* differs
(``"settings.epochs: 3 -> 10"``, ``"model.weights.h5 is not the file its manifest vouches for"``), so
that a stale or foreign artefact is rebuilt with a line instead of being used silently. A folder
is written under a temporary name and renamed into place when complete (`atomic_path`): a reader
never sees half of it, and a killed writer leaves only a hidden temporary, removed later by
`clean_stale`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

MANIFEST = "manifest.json"
STALE_AFTER_S = 6 * 3600      # a temporary nobody touched for this long belongs to a killed writer


class ArtefactError(RuntimeError):
    """A saved artefact is damaged, foreign or of another version; the message names the file."""


def canonical(spec):
    """`spec` as plain JSON values (NumPy scalars and arrays, paths -> Python), for comparisons."""
    def plain(o):
        return o.tolist() if hasattr(o, "tolist") else str(o)
    return json.loads(json.dumps(spec, sort_keys=True, default=plain))


def key_of(spec) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of `spec`."""
    text = json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a hidden temporary name beside `path` to write a file or a folder; on success it
    replaces `path` (``os.replace``; a folder replaces the old folder of that name), on failure it
    is removed. A full disk names `path` in the error. Stale temporaries beside `path` (what killed
    writers left, `clean_stale`) are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)                         # what killed writers left there
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix  # writers insist
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")
    old = tmp.with_name(tmp.name + ".old")
    try:
        try:
            yield tmp
        except OSError as err:
            if str(path) not in str(err):
                raise OSError(err.errno, f"{path}: {err.strerror or err}") from err
            raise
        if tmp.is_dir() and path.is_dir():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for p in (tmp, old):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()


def write_text(path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_manifest(folder, spec, files=(), **extra) -> dict:
    """Write ``folder/manifest.json`` (``key``, ``spec``, size and SHA-256 of each of `files`,
    `extra`) atomically; call it last, when the files are complete."""
    folder = Path(folder)
    sums = {name: {"size": (folder / name).stat().st_size, "sha256": file_hash(folder / name)} for name in files}
    record = {"key": key_of(spec), "spec": canonical(spec), "files": sums, **canonical(extra)}
    write_text(folder / MANIFEST, json.dumps(record, indent=1))
    return record


def read_manifest(folder) -> dict | None:
    """``folder/manifest.json``, or None when it is missing or unreadable."""
    try:
        record = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def differences(old, new, prefix: str = "") -> list[str]:
    """What differs between two specs, as ``"a.b: old -> new"`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            name = f"{prefix}.{k}" if prefix else str(k)
            out += differences(old.get(k, "(absent)"), new.get(k, "(absent)"), name)
        return out
    short = [json.dumps(v)[:40] for v in (old, new)]
    return [] if old == new else [f"{prefix or 'value'}: {short[0]} -> {short[1]}"]


def check_files(folder, record: dict) -> str | None:
    """None when every file `record` lists has its recorded size and SHA-256, else the first
    that does not."""
    for name, want in record.get("files", {}).items():
        path = Path(folder) / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want.get("size") or file_hash(path) != want.get("sha256"):
            return f"{name} is not the file its manifest vouches for (size or SHA-256 differs)"
    return None


def check(folder, spec) -> str | None:
    """None when `folder` holds a complete artefact made exactly as `spec` says; otherwise why
    not, in a few words (for the line that says what is rebuilt and why)."""
    record = read_manifest(folder)
    if record is None:
        return "missing" if not Path(folder, MANIFEST).exists() else f"{MANIFEST} is unreadable"
    changed = differences(record.get("spec", {}), canonical(spec))
    if changed:
        return "made from other inputs (" + "; ".join(changed[:6]) + ")"
    return check_files(folder, record)


def clean_stale(folder, stale_after_s: float = STALE_AFTER_S) -> None:
    """Remove the hidden temporaries (`atomic_path`) in `folder` that nobody touched for
    `stale_after_s` seconds: what killed writers left behind."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.glob(".*.tmp*"):
        with contextlib.suppress(OSError):
            if time.time() - p.stat().st_mtime > stale_after_s:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
