"""Output files: atomic, and with the permissions any file the user creates gets (issue 15, item 8)."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from perturbode_core.io import files


@pytest.fixture()
def umask():
    """Set the process umask for one test, and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask):
        os.umask(mask)

    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    files.write_text_atomic(tmp_path / "table.csv", "a,b\n")
    files.write_bytes_atomic(tmp_path / "model.pt", b"PK")
    for name in ("table.csv", "model.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "table.csv"]  # no temporary left


def test_atomic_writes_never_change_the_process_umask(tmp_path, umask, monkeypatch):
    """Reading the umask by setting it races with other threads' files (a thread's file could be
    created 0666 meanwhile): the write must work without ever calling os.umask."""
    umask(0o022)

    def forbidden(_mask):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", forbidden)
    errors = []

    def write(i):
        try:
            files.write_text_atomic(tmp_path / f"f{i}.txt", str(i))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(stat.S_IMODE((tmp_path / f"f{i}.txt").stat().st_mode) == 0o644 for i in range(8))


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
