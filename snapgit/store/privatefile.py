"""Private files: what snapgit writes is its owner's alone, and whole or absent after a crash.

A store holds a database's rows, so every folder snapgit creates is 0700 and every file 0600
(0400 once it never changes again, as packs are), whatever the umask; export files hold the same
rows and get the same modes. ``Path.mkdir(parents=True)`` would create missing parents with the
umask's mode, so :func:`make_private_dirs` creates each level itself.

A small file replaced as a whole (``MERGE_HEAD``, ``RESTORED``, ``config.toml``) is written as
git writes its files: into ``<name>.tmp`` (created 0600, never reused: a leftover is removed
first), flushed to disk, renamed over the name, and the folder flushed so that the rename itself
survives a crash. A reader therefore sees the old file or the new one, never half of one. A
killed writer can leave the ``.tmp`` behind; :func:`stale_temporary_files` lists those in a
folder for gc to delete once older than its grace period.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from snapgit.store.pack import fsync_dir

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "TEMP_SUFFIX",
    "make_private_dirs",
    "open_private",
    "stale_temporary_files",
    "write_private",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
TEMP_SUFFIX = ".tmp"


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700; existing folders are left as they are."""
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it meanwhile
            d.mkdir(mode=PRIVATE_DIR_MODE)


def open_private(path: Path) -> int:
    """A new file at ``path``, created 0600 for writing (never an existing one): its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, crash-safely: temp file, fsync, rename, fsync the folder."""
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left by a killed writer, perhaps with a wider mode
    fd = open_private(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def stale_temporary_files(directory: Path) -> list[Path]:
    """The ``<name>.tmp`` files :func:`write_private` may have left in ``directory``."""
    return sorted(p for p in directory.glob("*" + TEMP_SUFFIX) if p.is_file())
