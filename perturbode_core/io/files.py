"""Files: the one check of an input path, and atomic writes.

Every reader of a user-given file (data, checkpoints, edge lists, gene sets, configs, networks)
calls :func:`check_input_file`, so "missing", "a folder" and "empty" read the same everywhere.
Writes go to a temporary file in the same folder, are fsync-ed, then renamed: a reader (or a
crash) never sees a half-written checkpoint, table or export.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success, fsync it and rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # mkstemp creates files readable by their owner only; results are meant to be shared,
        # so give them the permissions a plain open() would (0666 less the umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield Path(tmp)
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
