"""Files: the one check of an input path, and atomic writes.

Every reader of a user-given file (data, checkpoints, edge lists, gene sets, configs, networks)
calls :func:`check_input_file`, so "missing", "a folder" and "empty" read the same everywhere.
Writes go to a temporary file in the same folder, are fsync-ed, then renamed: a reader (or a
crash) never sees a half-written checkpoint, table or export.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from perturbode_core.errors import PerturbODEError


def check_input_file(path: str | os.PathLike, *, kind: str = "File", where: str | None = None,
                     fix: str = "Check the path", allow_empty: bool = False) -> Path:
    """Refuse a path that does not exist, is a folder, or is empty; return it as a ``Path``.

    Parameters
    ----------
    kind
        What the file should be, capitalised for the message ("Checkpoint", "Edge list").
    where
        Where the path came from (default: the path itself).
    fix
        How to fix a missing file.
    """
    path = Path(path)
    where = where or str(path)
    if not path.exists():
        raise PerturbODEError(f"{kind} not found: {path}", where=where, fix=fix)
    if path.is_dir():
        raise PerturbODEError(f"{path} is a folder, not a file ({kind.lower()} expected)", where=where,
                              fix="Point to the file inside it")
    if not allow_empty and path.stat().st_size == 0:
        raise PerturbODEError(f"The {kind.lower()} is empty (0 bytes)", where=where,
                              fix="Re-export or re-download the file")
    return path


def _create_temporary(path: Path) -> Path:
    """A new, empty file next to ``path`` with the permissions a plain ``open()`` would give it.

    ``tempfile.mkstemp`` creates files readable by their owner only (0600), and reading the umask
    means setting it (``os.umask``), which races with every other thread creating files. Opening
    with ``O_CREAT | O_EXCL`` and mode 0666 lets the kernel apply the umask (and default ACLs)
    itself, atomically; ``O_EXCL`` keeps the name ours.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"Could not create a temporary file next to {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success, fsync it and rename it onto ``path``.

    The file gets the permissions of any file the user creates (0666 less the umask: 0644 under
    the usual umask 022), never the owner-only 0600 of ``mkstemp``. On an exception the temporary
    file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding=encoding)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def copy_file_atomic(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy ``source`` onto ``path`` atomically (a reader never sees half a file)."""
    import shutil

    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)
