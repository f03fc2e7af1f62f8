"""What a store's packs are made of, pack by pack in the order they were written: records,
leaf nodes stored whole or as deltas (with their depths), inner nodes, metadata, and the
index files. A commit writes one pack (more when big), so the rows are what each version
added to the store.

    .venv/bin/python scripts/store_growth.py STORE [--json]

Compressed bytes are counted per block and shared among a block's entries by their raw sizes
(records and nodes go into blocks of their own, so the shares are exact for the split between
them and near for the kinds of node).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from snapgit.objects import Node, ObjType
from snapgit.repo import Repo
from snapgit.store.pack import DELTA, entry_depth, entry_kind, entry_type

KINDS = ("records", "leaf_full", "leaf_delta", "inner_full", "inner_delta", "meta", "index", "pack_overhead")


def kind_of(objects, pack: str, entry: bytes) -> str:
    t = entry_type(entry)
    if t == ObjType.RECORD:
        return "records"
    if t != ObjType.NODE:
        return "meta"
    full, _ = objects.resolve_entry(pack, entry)
    leaf = Node.decode(full[1:]).level == 0
    delta = entry_kind(entry) == DELTA
    return ("leaf" if leaf else "inner") + ("_delta" if delta else "_full")


def analyse(store_path: Path) -> list[dict]:
    repo = Repo.open(store_path)
    objects = repo.store.objects
    pack_dir = objects.pack_dir
    names = sorted(objects.pack_names(), key=lambda n: (pack_dir / f"pack-{n}.pack").stat().st_mtime)
    rows = []
    for name in names:
        sizes: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        depths: Counter[int] = Counter()
        rd = objects.pack_reader(name)
        in_blocks = 0
        for clen, entries in rd.iter_blocks():
            in_blocks += clen
            kinds = [kind_of(objects, name, e) for e in entries]
            raw = sum(map(len, entries)) or 1
            for k, e in zip(kinds, entries, strict=True):
                sizes[k] += clen * len(e) / raw
                counts[k] += 1
                if entry_kind(e) == DELTA:
                    depths[entry_depth(e)] += 1
        pack_bytes = (pack_dir / f"pack-{name}.pack").stat().st_size
        sizes["pack_overhead"] = pack_bytes - in_blocks
        sizes["index"] = (pack_dir / f"pack-{name}.idx").stat().st_size
        rows.append(
            {
                "pack": name[:12],
                "bytes": pack_bytes + sizes["index"],
                "bytes_by_kind": {k: round(sizes[k]) for k in KINDS},
                "objects_by_kind": {k: counts[k] for k in KINDS if counts[k]},
                "delta_depths": dict(sorted(depths.items())),
            }
        )
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store", type=Path)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = analyse(args.store)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    kb = lambda n: f"{n / 1e3:8.0f}"  # noqa: E731
    print(f"{'pack':12} {'total kB':>9} " + " ".join(f"{k:>11}" for k in KINDS) + "  depths")
    for r in rows:
        by = r["bytes_by_kind"]
        depths = " ".join(f"{d}:{n}" for d, n in r["delta_depths"].items())
        print(f"{r['pack']:12} {kb(r['bytes']):>9} " + " ".join(f"{kb(by[k]):>11}" for k in KINDS) + f"  {depths}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
