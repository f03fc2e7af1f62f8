"""The ``.snapstore`` directory: its layout, its format version, and opening it.

::

    .snapstore/            mode 0700: it holds copies of the data
      VERSION              "snapgit store 3\\n"; a store of format 1 or 2 is upgraded when opened,
                           one of another version refuses to open
      config.toml          config.py
      HEAD                 "ref: refs/heads/main\\n" or a commit id
      refs/heads/ refs/tags/   refs.py
      logs/                reflogs
      objects/pack/        packs and indexes (pack.py, packindex.py)
      objects/trash/       packs gc replaced, deleted by a later gc after the grace period
      locks/               writer leases and the gc lock (lock.py)
      tmp/                 files being written; leftovers of killed runs are garbage
      oplog.jsonl          one JSON line per operation (oplog.py)

``init`` builds the whole directory under a temporary name and renames it into place, so a
half-created store never exists.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from snapgit.errors import CorruptError, NotFoundError, SnapError
from snapgit.store.config import Config, load_config, save_config
from snapgit.store.lock import StoreLocks
from snapgit.store.objectstore import DiskObjectStore
from snapgit.store.privatefile import write_private
from snapgit.store.refs import DiskRefs

__all__ = ["Store", "STORE_DIR", "FORMAT_VERSION", "find_store", "StoreExistsError"]

STORE_DIR = ".snapstore"
# 2: values may be stored with their engine's spelling (encoding.Spelled, ext type 11).
# 3: packs of version 2, whose deltas may be patches (store/pack.py).
# Every store of an earlier format is a store of this one, so one is read as it is; its
# VERSION file is rewritten when it is opened, so that an earlier snapgit refuses it (with the
# message of _check_version) once it may hold what that snapgit cannot decode.
FORMAT_VERSION = 3
_VERSION_TEXT = f"snapgit store {FORMAT_VERSION}\n"
_UPGRADABLE = {"snapgit store 1\n", "snapgit store 2\n"}


class StoreExistsError(SnapError):
    pass


def find_store(start: Path) -> Path:
    """The ``.snapstore`` in ``start`` or its nearest parent that has one."""
    start = start.resolve()
    for d in (start, *start.parents):
        candidate = d / STORE_DIR
        if candidate.is_dir():
            return candidate
    raise NotFoundError(
        f"not inside a snapgit store (no {STORE_DIR} in {start} or its parents)",
        hint="run `snap init --db URL` to create one, or `snap -C DIR ...` to point at one",
    )


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._check_version()
        self.config_path = root / "config.toml"
        self.config: Config = load_config(self.config_path)
        self.objects = DiskObjectStore(root)
        self.locks = StoreLocks(root)
        self.refs = DiskRefs(root, self.locks)

    def _check_version(self) -> None:
        path = self.root / "VERSION"
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            raise CorruptError(
                f"{self.root} has no VERSION file: not a snapgit store, or a damaged one",
                hint="if it is a store, restore its VERSION file",
            ) from None
        except OSError as exc:
            raise CorruptError(f"cannot read {path}: {exc}") from exc
        if text in _UPGRADABLE:
            try:
                write_private(path, _VERSION_TEXT.encode("utf-8"))
            except PermissionError:
                # a store this user may only read (a backup on read-only media, another user's):
                # reading it needs no upgrade, and nothing can be written into it to need one
                pass
            except OSError as exc:
                if exc.errno != errno.EROFS:
                    raise CorruptError(
                        f"cannot upgrade {self.root} to format {FORMAT_VERSION}: {exc}",
                        hint="make the store writable: this snapgit marks an older store as its own before using it",
                    ) from exc
            return
        if text != _VERSION_TEXT:
            found = text.strip()[:60] or "(empty)"
            raise CorruptError(
                f"{self.root} is a store of format {found!r}; this snapgit reads formats 1 to {FORMAT_VERSION}",
                hint="use the snapgit version that wrote it",
            )

    @property
    def project_dir(self) -> Path:
        return self.root.parent

    @classmethod
    def open(cls, start: Path) -> Store:
        return cls(find_store(start))

    @classmethod
    def init(cls, directory: Path, config: Config, initial_branch: str = "main") -> Store:
        directory = directory.resolve()
        final = directory / STORE_DIR
        if final.exists():
            raise StoreExistsError(f"a store already exists at {final}", hint="use it, or remove it to start over")
        if not directory.is_dir():
            raise NotFoundError(f"directory {directory} does not exist")
        tmp = directory / f"{STORE_DIR}.tmp-{os.urandom(4).hex()}"
        old_umask = os.umask(0o077)
        try:
            tmp.mkdir(mode=0o700)
            for sub in ("refs/heads", "refs/tags", "logs", "objects/pack", "tmp", "locks"):
                (tmp / sub).mkdir(parents=True, mode=0o700)
            (tmp / "VERSION").write_text(_VERSION_TEXT, encoding="utf-8")
            (tmp / "HEAD").write_text(f"ref: refs/heads/{initial_branch}\n", encoding="utf-8")
            save_config(tmp / "config.toml", config)
            os.rename(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            # rename onto a directory that appeared meanwhile (another init won): ENOTEMPTY
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise StoreExistsError(f"a store already exists at {final}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.umask(old_umask)
        return cls(final)

    def save_config(self) -> None:
        save_config(self.config_path, self.config)

    def close(self) -> None:
        self.objects.close()
