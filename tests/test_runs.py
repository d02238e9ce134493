"""`gislr_utils.runs`: atomic writes, the manifest (spec and checksums) and stale temporaries.

No TensorFlow, no training: plain files in a temporary folder.
"""
from __future__ import annotations

import errno
import json
import os
import time

import numpy as np
import pytest

from gislr_utils import runs


# --------------------------------------------------------------------------------------------------
# atomic_path
# --------------------------------------------------------------------------------------------------
def test_a_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "history.csv"
    runs.write_text(target, "old")
    with pytest.raises(RuntimeError, match="killed"):
        with runs.atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_text("half")
            assert target.read_text() == "old"            # nobody sees the new file before the end
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]
    runs.write_text(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_writers_that_insist_on_a_suffix_get_it(tmp_path):
    with runs.atomic_path(tmp_path / "model.weights.h5") as tmp:       # Keras checks the suffix
        assert tmp.name.endswith(".weights.h5") and tmp.name.startswith(".")
        tmp.write_bytes(b"w")
    with runs.atomic_path(tmp_path / "split.npz") as tmp:
        assert tmp.suffix == ".npz"
        np.savez(tmp, a=np.arange(3))
    assert (tmp_path / "model.weights.h5").read_bytes() == b"w"
    np.testing.assert_array_equal(np.load(tmp_path / "split.npz")["a"], np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.weights.h5", "split.npz"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "a.txt").write_text("old a")
    (run / "b.txt").write_text("old b")
    with pytest.raises(RuntimeError):
        with runs.atomic_path(run) as tmp:
            tmp.mkdir()
            (tmp / "a.txt").write_text("new a")
            raise RuntimeError("killed while writing")
    assert sorted(p.name for p in run.iterdir()) == ["a.txt", "b.txt"] and (run / "a.txt").read_text() == "old a"
    with runs.atomic_path(run) as tmp:
        tmp.mkdir()
        (tmp / "c.txt").write_text("new c")
        assert sorted(p.name for p in run.iterdir()) == ["a.txt", "b.txt"]     # unchanged until the end
    assert [p.name for p in run.iterdir()] == ["c.txt"]                        # the old files are gone
    assert [p.name for p in tmp_path.iterdir()] == ["run"]                     # no temporary left


def test_a_full_disk_names_the_file_being_written(tmp_path):
    """Issue 26: a full disk killed the kernel without naming anything."""
    target = tmp_path / "runs" / "x" / "model.weights.h5"
    with pytest.raises(OSError, match=rf"{target}: No space left on device") as err:
        with runs.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert err.value.errno == errno.ENOSPC
    assert not target.exists() and not list(target.parent.iterdir())


def test_clean_stale_removes_only_old_temporaries(tmp_path):
    old = time.time() - 2 * runs.STALE_AFTER_S
    young_file, young_dir = tmp_path / ".a.1-x.tmp", tmp_path / ".b.2-y.tmp.npz"
    old_file, old_dir = tmp_path / ".c.3-z.tmp.h5", tmp_path / ".new.4-w.tmp"
    kept_old = [tmp_path / "finished", tmp_path / ".hidden", tmp_path / "x.tmp"]   # not temporaries
    for d in (young_dir, old_dir, kept_old[0]):
        d.mkdir()
        (d / "X.npy").write_bytes(b"0")
    for f in (young_file, old_file, *kept_old[1:]):
        f.write_bytes(b"0")
    for p in (old_file, old_dir, *kept_old):
        os.utime(p, (old, old))
    runs.clean_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (young_file, young_dir, *kept_old))
    runs.clean_stale(tmp_path / "missing")                  # no folder: nothing to do


# --------------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------------
SPEC = {"settings": {"epochs": 3, "units": np.int64(16), "rate": np.float32(0.5)}, "data": "ab" * 8, "version": 4}


def _folder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.weights.h5").write_bytes(b"weights" * 100)
    (folder / "history.csv").write_text("epoch,loss\n0,1.5\n")
    runs.write_manifest(folder, SPEC, files=["model.weights.h5", "history.csv"], note="extra")
    return folder


def test_the_manifest_records_the_spec_and_each_files_size_and_sha256(tmp_path):
    import hashlib
    folder = _folder(tmp_path)
    record = json.loads((folder / runs.MANIFEST).read_text())
    assert record["spec"] == {"settings": {"epochs": 3, "units": 16, "rate": 0.5}, "data": "ab" * 8, "version": 4}
    assert record["note"] == "extra" and record["key"] == runs.key_of(SPEC)
    data = (folder / "model.weights.h5").read_bytes()
    assert record["files"]["model.weights.h5"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert runs.check(folder, SPEC) is None
    # the key does not depend on the order of keys nor on NumPy scalar types
    assert runs.key_of({"version": 4, "data": "ab" * 8, "settings": {"rate": 0.5, "units": 16, "epochs": 3}}) \
        == runs.key_of(SPEC)


@pytest.mark.parametrize("change, says", [
    ({"settings": {**SPEC["settings"], "epochs": 10}}, "settings.epochs: 3 -> 10"),
    ({"data": "cd" * 8}, f'data: "{"ab" * 8}" -> "{"cd" * 8}"'),
    ({"version": 5}, "version: 4 -> 5"),
    ({"settings": {**SPEC["settings"], "warmup": 2}}, 'settings.warmup: "(absent)" -> 2'),
])
def test_a_different_spec_is_named(tmp_path, change, says):
    folder = _folder(tmp_path)
    why = runs.check(folder, {**SPEC, **change})
    assert why.startswith("made from other inputs") and says in why


def test_a_changed_missing_or_unreadable_file_is_named(tmp_path):
    folder = _folder(tmp_path)
    data = (folder / "model.weights.h5").read_bytes()
    (folder / "model.weights.h5").write_bytes(data[:-1] + b"X")            # same size, other bytes
    assert "model.weights.h5 is not the file its manifest vouches for" in runs.check(folder, SPEC)
    (folder / "model.weights.h5").write_bytes(data)
    assert runs.check(folder, SPEC) is None
    (folder / "history.csv").write_text("epoch,loss\n0,1.5\n1,1.2\n")     # another size
    assert "history.csv is not the file" in runs.check(folder, SPEC)
    (folder / "history.csv").unlink()
    assert runs.check(folder, SPEC) == "history.csv is missing"
    (folder / runs.MANIFEST).write_text("{not json")
    assert runs.check(folder, SPEC) == f"{runs.MANIFEST} is unreadable"
    assert runs.read_manifest(folder) is None
    (folder / runs.MANIFEST).unlink()
    assert runs.check(folder, SPEC) == "missing"
    assert runs.check(tmp_path / "nothing", SPEC) == "missing"


def test_differences_lists_every_changed_leaf():
    old = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    new = {"a": {"b": 2, "c": [1, 2]}, "e": True}
    assert runs.differences(old, new) == ['a.b: 1 -> 2', 'd: "x" -> "(absent)"', 'e: "(absent)" -> true']
    assert runs.differences(old, old) == []
