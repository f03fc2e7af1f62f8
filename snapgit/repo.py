"""The Python API: one object per store, one method per thing a user does.

``Repo`` joins the store (objects, refs, config), the database layer and the operations; the CLI
is a thin layer over it. The database layer (and SQLAlchemy with it) is imported only by methods
that talk to a database, so commands that only read the store start fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import oplog
from .commit import CommitResult, Progress, commit_snapshot, default_author, now_micros, snapshot_database, write_root
from .config import Config
from .errors import NotFoundError, SnapError
from .history import read_commit, read_root, read_table, resolve, walk
from .objects import Commit, Node, ObjType, Root, TableEntry, Tag, decode_schema, object_id, unpack_canonical
from .refs import check_ref_name
from .schema import TableSchema
from .store import Store
from .encoding import decode_row

if TYPE_CHECKING:
    from .diff import Side, TableDiff

__all__ = ["Repo", "TableInfo", "NoDatabaseError"]


class NoDatabaseError(SnapError):
    pass


@dataclass
class TableInfo:
    name: str
    rows: int
    key: list[str] | None
    schema: TableSchema
    table_id: bytes


class Repo:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.notes: list[str] = []  # things the user should know after an operation
        self.objects = store.objects
        self.refs = store.refs

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path = ".") -> "Repo":
        return cls(Store.open(Path(path)))

    @classmethod
    def init(cls, path: str | Path = ".", db_url: str | None = None, *, check: bool = True) -> "Repo":
        import os

        from .config import ENV_URL_VARS

        directory = Path(path).resolve()
        url = db_url or next((os.environ[v] for v in ENV_URL_VARS if os.environ.get(v)), None)
        config = Config()
        if url:
            from .db import Database, normalize_url, redact_url

            full = normalize_url(url, base_dir=directory)
            if check:
                Database.connect(full).close()
            config.url = redact_url(full)
        store = Store.init(directory, config)
        repo = cls(store)
        if url and config.url != normalize_url(url, base_dir=directory):
            repo.notes.append(
                "the password in the URL was not stored; give it with SNAP_DATABASE_URL, DATABASE_URL, "
                "or [database] password_env in .snapstore/config.toml"
            )
        return repo

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Repo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def config(self) -> Config:
        return self.store.config

    # -- names --------------------------------------------------------------------------------

    def head_ref(self) -> str | None:
        """The branch ref HEAD points at (``refs/heads/main``), or None when detached."""
        return self.refs.read_symbolic("HEAD")

    def head(self) -> bytes | None:
        value = self.refs.read("HEAD")
        return bytes.fromhex(value) if value else None

    def resolve(self, rev: str) -> bytes:
        return resolve(self.objects, self.refs, rev)

    def read_commit(self, oid: bytes) -> Commit:
        return read_commit(self.objects, oid)

    # -- commit -------------------------------------------------------------------------------

    def database_url(self, override: str | None = None) -> str:
        from .db import normalize_url

        url = self.config.database_url(override)
        if not url:
            raise NoDatabaseError(
                "no database configured for this store",
                hint="pass --db URL, set SNAP_DATABASE_URL, or set [database] url in .snapstore/config.toml",
            )
        return normalize_url(url, base_dir=self.store.project_dir)

    def keys_for(self, schema: TableSchema) -> list[str] | None:
        tc = self.config.table_config(schema.name)
        if tc.key:
            missing = [c for c in tc.key if c not in schema.column_names]
            if missing:
                raise SnapError(
                    f"config.toml gives table {schema.name!r} the key {tc.key}, but it has no column {missing[0]!r}",
                    hint="fix [tables.%s] key in .snapstore/config.toml" % schema.name,
                )
            return list(tc.key)
        return list(schema.primary_key) or None

    def commit(
        self,
        message: str,
        *,
        tables: list[str] | None = None,
        author: str | None = None,
        allow_empty: bool = False,
        db_url: str | None = None,
        progress: Progress | None = None,
        kind: str = "full",
    ) -> CommitResult:
        """Snapshot the live database and commit it on the current branch."""
        from .db import Database, redact_url

        started = time.monotonic()
        author = default_author(author or self.config.user_name)
        url = self.database_url(db_url)
        args = {"message": message, "tables": tables, "allow_empty": allow_empty, "db": redact_url(url)}
        try:
            result = self._commit(url, message, tables, author, allow_empty, progress, kind)
        except SnapError as exc:
            self._log(author, "commit", args, ok=False, error=str(exc))
            raise
        result.seconds = time.monotonic() - started
        self._log(
            author,
            "commit",
            args,
            ok=True,
            result={
                "commit": result.commit_id.hex() if result.commit_id else None,
                "rows": {t.name: t.rows for t in result.tables},
            },
        )
        return result

    def _commit(self, url, message, tables, author, allow_empty, progress, kind) -> CommitResult:
        from .db import Database, redact_url

        ref = self.head_ref() or "HEAD"
        head_hex = self.refs.read(ref)
        parent = bytes.fromhex(head_hex) if head_hex else None
        parent_root = read_root(self.objects, read_commit(self.objects, parent).tree) if parent else None
        wanted = tables or self.config.tables
        read_at, _ = now_micros()
        with Database.connect(url) as db, db.snapshot() as snap:
            schemas = snap.reflect(wanted)
            if not schemas:
                raise SnapError(
                    f"the database {redact_url(url)} has no tables: nothing to snapshot",
                    hint="create tables first, or point --db at another database",
                )
            with self.objects.writer() as w:
                written, results = snapshot_database(
                    self.objects,
                    w,
                    snap,
                    schemas,
                    parent_root=parent_root,
                    keys=self.keys_for,
                    progress=progress,
                    count_rows=progress is not None,
                )
                all_tables = dict(written)
                if tables and parent_root is not None:
                    # An explicit --tables commits those tables and keeps the others as they were.
                    all_tables = {**parent_root.tables, **written}
                tree_id = write_root(self.objects, w, all_tables)
        meta: dict[str, Any] = {
            "kind": kind,
            "source": redact_url(url),
            "dialect": db.dialect,
            "rows": {r.name: r.rows for r in results},
            "snapgit": __import__("snapgit").__version__,
            "read_at": read_at,
        }
        if tables:
            meta["tables"] = list(tables)
        cid, parent = commit_snapshot(
            self.objects,
            self.refs,
            ref=ref,
            expected_parent=parent,
            tree_id=tree_id,
            author=author,
            message=message,
            meta=meta,
            allow_same_tree=allow_empty,
        )
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
        return CommitResult(cid, tree_id, parent, branch, results)

    def _log(self, who: str, op: str, args: dict[str, Any], *, ok: bool, result=None, error=None) -> None:
        try:
            oplog.append(self.store.root / "oplog.jsonl", who=who, op=op, args=args, ok=ok, result=result, error=error)
        except OSError:
            pass  # the audit log must never turn a finished operation into a failure

    def oplog(self) -> Iterator[dict[str, Any]]:
        return oplog.read(self.store.root / "oplog.jsonl")

    # -- diff and status ----------------------------------------------------------------------

    def commit_side(self, rev: str) -> "Side":
        from .diff import Side

        oid = self.resolve(rev)
        root = read_root(self.objects, read_commit(self.objects, oid).tree)
        return Side(self.objects, dict(root.tables), f"{rev} ({oid.hex()[:12]})" if rev != oid.hex() else oid.hex()[:12])

    def live_side(
        self, *, against: "Side | None" = None, tables: list[str] | None = None, db_url: str | None = None,
        progress: Progress | None = None,
    ) -> "Side":
        """The live database as a diff side, built in memory (nothing is written to the store).

        ``against`` is the side it will be compared with: its trees let unchanged leaves be
        recognised without keeping them.
        """
        from .db import Database
        from .diff import Side
        from .objectstore import OverlayObjectStore

        url = self.database_url(db_url)
        overlay = OverlayObjectStore(self.objects)
        parent_root = Root(dict(against.tables)) if against is not None else None
        wanted = tables or self.config.tables
        with Database.connect(url) as db, db.snapshot() as snap:
            names = snap.table_names()
            if tables:
                wanted = [t for t in tables if t in names]
            schemas = snap.reflect(wanted) if wanted is None or wanted else []
            written, _results = snapshot_database(
                overlay, overlay.writer(), snap, schemas, parent_root=parent_root, keys=self.keys_for,
                progress=progress, count_rows=progress is not None,
            )
        return Side(overlay, written, "the live database")

    def diff(
        self, a: str | None = None, b: str | None = None, *, tables: list[str] | None = None,
        db_url: str | None = None, progress: Progress | None = None,
    ) -> list["TableDiff"]:
        """Per-table differences: no revision: HEAD -> live; one: A -> live; two: A -> B."""
        from .diff import diff_sides

        side_a = self.commit_side(a or "HEAD")
        if b is None:
            side_b = self.live_side(against=side_a, tables=tables, db_url=db_url, progress=progress)
        else:
            side_b = self.commit_side(b)
        return diff_sides(side_a, side_b, tables)

    def status(self, *, db_url: str | None = None, progress: Progress | None = None) -> list["TableDiff"]:
        """The live database against HEAD (against nothing when there is no commit yet)."""
        from .diff import Side, diff_sides

        if self.head() is None:
            side_a = Side(self.objects, {}, "nothing (no commits yet)")
        else:
            side_a = self.commit_side("HEAD")
        side_b = self.live_side(against=side_a, db_url=db_url, progress=progress)
        return diff_sides(side_a, side_b)

    # -- history ------------------------------------------------------------------------------

    def log(self, rev: str = "HEAD", n: int | None = None) -> list[tuple[bytes, Commit]]:
        out = []
        for item in walk(self.objects, [self.resolve(rev)]):
            if n is not None and len(out) >= n:
                break
            out.append(item)
        return out

    def tables(self, rev: str = "HEAD") -> list[TableInfo]:
        """The tables of a commit, with their row counts, keys and schemas."""
        commit = self.read_commit(self.resolve(rev))
        root = read_root(self.objects, commit.tree)
        out = []
        for name, tid in sorted(root.tables.items()):
            entry = read_table(self.objects, tid)
            otype, data = self.objects.get(entry.schema)
            out.append(TableInfo(name, entry.rows, entry.key, decode_schema(data), tid))
        return out

    # -- branches and tags --------------------------------------------------------------------

    def branches(self) -> list[tuple[str, bytes, bool]]:
        current = self.head_ref()
        return [
            (name.removeprefix("refs/heads/"), bytes.fromhex(v), name == current)
            for name, v in self.refs.list("refs/heads").items()
        ]

    def create_branch(self, name: str, rev: str = "HEAD") -> bytes:
        check_ref_name(name, "branch")
        oid = self.resolve(rev)
        ref = f"refs/heads/{name}"
        if self.refs.read(ref) is not None:
            raise SnapError(f"branch {name!r} already exists")
        self.refs.set_if_equals(ref, None, oid.hex(), who=default_author(self.config.user_name), message=f"branch: created from {rev}")
        return oid

    def delete_branch(self, name: str) -> bytes:
        ref = f"refs/heads/{name}"
        value = self.refs.read(ref)
        if value is None:
            raise NotFoundError(f"branch {name!r} not found")
        if self.head_ref() == ref:
            raise SnapError(f"cannot delete branch {name!r}: HEAD is on it", hint="switch to another branch first")
        self.refs.delete_if_equals(ref, value, who=default_author(self.config.user_name), message="branch: deleted")
        return bytes.fromhex(value)

    def tags(self) -> list[tuple[str, bytes]]:
        return [(n.removeprefix("refs/tags/"), bytes.fromhex(v)) for n, v in self.refs.list("refs/tags").items()]

    def create_tag(self, name: str, rev: str = "HEAD", message: str | None = None) -> bytes:
        check_ref_name(name, "tag")
        ref = f"refs/tags/{name}"
        if self.refs.read(ref) is not None:
            raise SnapError(f"tag {name!r} already exists")
        target = self.resolve(rev)
        oid = target
        who = default_author(self.config.user_name)
        if message is not None:
            t, tz = now_micros()
            data = Tag(target, name, who, t, tz, message).encode()
            oid = object_id(ObjType.TAG, data)
            with self.objects.writer() as w:
                w.add(ObjType.TAG, data, oid)
        self.refs.set_if_equals(ref, None, oid.hex(), who=who, message=f"tag: {name}")
        return oid

    # -- plumbing -----------------------------------------------------------------------------

    def find_object(self, spec: str) -> bytes:
        spec = spec.strip().lower()
        if len(spec) < 4 or any(c not in "0123456789abcdef" for c in spec):
            try:
                return self.resolve(spec)
            except SnapError:
                raise NotFoundError(f"no object {spec!r}", hint="give an object id or a unique prefix of at least 4 digits") from None
        matches = self.objects.find_prefix(spec)
        if not matches:
            raise NotFoundError(f"no object {spec!r}")
        if len(matches) > 1:
            raise SnapError(f"object prefix {spec!r} is ambiguous ({len(matches)} objects)", hint="give more digits")
        return matches[0]

    def cat_object(self, spec: str) -> tuple[bytes, str, Any]:
        """(id, kind, decoded content) of any object, for debugging."""
        oid = self.find_object(spec)
        otype, data = self.objects.get(oid)
        kind = ObjType(otype).name.lower()
        decoded: Any
        if otype == ObjType.RECORD:
            decoded = decode_row(data)
        elif otype == ObjType.NODE:
            n = Node.decode(data)
            decoded = {"level": n.level, "entries": [
                {"key": k.hex(), "id": i.hex(), **({"rows": c} if n.level else {})}
                for k, i, c in zip(n.keys, n.ids, n.counts or [None] * len(n.keys))
            ]}
        elif otype == ObjType.SCHEMA:
            decoded = decode_schema(data).to_obj()
        elif otype == ObjType.TABLE:
            e = TableEntry.decode(data)
            decoded = {"schema": e.schema.hex(), "root": e.root.hex(), "rows": e.rows, "key": e.key}
        elif otype == ObjType.ROOT:
            decoded = {n: t.hex() for n, t in Root.decode(data).tables.items()}
        elif otype == ObjType.COMMIT:
            c = Commit.decode(data)
            decoded = {"tree": c.tree.hex(), "parents": [p.hex() for p in c.parents], "author": c.author,
                       "time": c.time, "tz": c.tz, "message": c.message, "meta": c.meta}
        elif otype == ObjType.TAG:
            t = Tag.decode(data)
            decoded = {"target": t.target.hex(), "name": t.name, "tagger": t.tagger, "time": t.time,
                       "tz": t.tz, "message": t.message}
        else:
            decoded = unpack_canonical(data)
        return oid, kind, decoded

