"""Plumbing: any stored object by id or prefix, decoded for people (``snap cat-object``).

Objects are content-addressed (:mod:`snapgit.objects`): records (rows), tree nodes, schemas,
table entries, roots, commits and tags. :func:`find_object` takes a full id, a unique prefix of
at least four hex digits, or a revision; :func:`describe_object` decodes any kind into plain
JSON-able values, ids in hex.
"""

from __future__ import annotations

from typing import Any

from snapgit.encoding import decode_row
from snapgit.errors import NotFoundError, SnapError
from snapgit.objects import Commit, Node, ObjType, Root, TableEntry, Tag, decode_schema, unpack_canonical
from snapgit.store.history import resolve
from snapgit.store.layout import Store

__all__ = ["find_object", "describe_object"]


def find_object(store: Store, spec: str) -> bytes:
    """The id of the object ``spec`` names: a hex id or unique prefix, else a revision."""
    spec = spec.strip().lower()
    if len(spec) < 4 or any(c not in "0123456789abcdef" for c in spec):
        try:
            return resolve(store.objects, store.refs, spec)
        except SnapError:
            raise NotFoundError(
                f"no object {spec!r}", hint="give an object id or a unique prefix of at least 4 digits"
            ) from None
    matches = store.objects.find_prefix(spec)
    if not matches:
        raise NotFoundError(f"no object {spec!r}")
    if len(matches) > 1:
        raise SnapError(f"object prefix {spec!r} is ambiguous ({len(matches)} objects)", hint="give more digits")
    return matches[0]


def describe_object(otype: int, data: bytes) -> tuple[str, Any]:
    """(kind, decoded content) of an object's bytes."""
    kind = ObjType(otype).name.lower()
    decoded: Any
    if otype == ObjType.RECORD:
        decoded = decode_row(data)
    elif otype == ObjType.NODE:
        n = Node.decode(data)
        counts: list[int | None] = list(n.counts) if n.counts else [None] * len(n.keys)  # leaves have none
        decoded = {
            "level": n.level,
            "entries": [
                {"key": k.hex(), "id": i.hex(), **({"rows": c} if n.level else {})}
                for k, i, c in zip(n.keys, n.ids, counts, strict=False)
            ],
        }
    elif otype == ObjType.SCHEMA:
        decoded = decode_schema(data).to_obj()
    elif otype == ObjType.TABLE:
        e = TableEntry.decode(data)
        decoded = {"schema": e.schema.hex(), "root": e.root.hex(), "rows": e.rows, "key": e.key}
    elif otype == ObjType.ROOT:
        decoded = {n: t.hex() for n, t in Root.decode(data).tables.items()}
    elif otype == ObjType.COMMIT:
        c = Commit.decode(data)
        decoded = {
            "tree": c.tree.hex(),
            "parents": [p.hex() for p in c.parents],
            "author": c.author,
            "time": c.time,
            "tz": c.tz,
            "message": c.message,
            "meta": c.meta,
        }
    elif otype == ObjType.TAG:
        t = Tag.decode(data)
        decoded = {
            "target": t.target.hex(),
            "name": t.name,
            "tagger": t.tagger,
            "time": t.time,
            "tz": t.tz,
            "message": t.message,
        }
    else:
        decoded = unpack_canonical(data)
    return kind, decoded
