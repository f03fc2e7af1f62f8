"""What the templates show, shaped from the API's results: commits, diffs, plans, conflicts.

The pages never format values themselves: a cell becomes a :class:`Cell` here (its text cut to a
width, NULL marked), and the templates print it through Jinja2's autoescaping. A database value
is untrusted input, so nothing here marks text as safe HTML.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

from snapgit.jsonvalue import to_text

__all__ = [
    "Cell",
    "CommitView",
    "ConflictView",
    "DiffPage",
    "DiffRow",
    "PAGE_ROWS",
    "PlanView",
    "cell",
    "commit_view",
    "conflict_view",
    "diff_page",
    "plan_view",
    "when",
]

PAGE_ROWS = 50
CELL_WIDTH = 80


@dataclass
class Cell:
    text: str
    null: bool = False
    title: str | None = None  # the whole value, when the text is cut


def cell(v: Any, width: int = CELL_WIDTH) -> Cell:
    if v is None:
        return Cell("NULL", null=True)
    if type(v) is str:
        if len(v) > width:
            return Cell(v[: width - 1] + "…", title=v[:2000])
        return Cell(v)
    text = to_text(v, width)
    return Cell(text)


def when(micros: int, tz_minutes: int) -> str:
    tz = dt.timezone(dt.timedelta(minutes=tz_minutes))
    return dt.datetime.fromtimestamp(micros / 1_000_000, tz).strftime("%Y-%m-%d %H:%M:%S %z")


KIND_LABELS = {
    "full": "commit",
    "incremental": "commit",
    "merge": "merge",
    "import": "import",
    "pre-merge": "safety (merge)",
    "pre-restore": "safety (restore)",
    "saved": "saved",
}


@dataclass
class CommitView:
    id: str
    short: str
    parents: list[str]
    author: str
    time: str
    message: str
    first_line: str
    kind: str
    source: str | None
    rows: dict[str, int]
    refs: list[str] = field(default_factory=list)


def commit_view(oid: bytes, c: Any, refs: list[str] | None = None) -> CommitView:
    meta = c.meta if isinstance(c.meta, dict) else {}
    kind = str(meta.get("kind", "full"))
    rows = meta.get("rows") if isinstance(meta.get("rows"), dict) else {}
    message = c.message or ""
    return CommitView(
        id=oid.hex(),
        short=oid.hex()[:12],
        parents=[p.hex() for p in c.parents],
        author=c.author,
        time=when(c.time, c.tz),
        message=message,
        first_line=message.splitlines()[0] if message else "",
        kind=KIND_LABELS.get(kind, kind),
        source=meta.get("source"),
        rows={str(k): int(v) for k, v in (rows or {}).items() if isinstance(v, int)},
        refs=refs or [],
    )


@dataclass
class DiffRow:
    op: str  # added, removed, changed
    key: list[Cell]
    cells: list[tuple[Cell, Cell | None, bool]]  # (old or only value, new value when changed, whether changed)


@dataclass
class DiffPage:
    table: str
    columns: list[str]
    key_columns: list[str]
    rows: list[DiffRow]
    page: int
    more: bool
    schema: list[str]


def diff_page(d: Any, page: int, per_page: int = PAGE_ROWS) -> DiffPage:
    """One page of a table's row changes. Only the rows up to the page's end are read: the
    tree diff is a lazy stream, so the first page of a big diff costs a page, not the diff."""
    start = (page - 1) * per_page
    chunk = list(itertools.islice(d.rows(), start, start + per_page + 1))
    more = len(chunk) > per_page
    chunk = chunk[:per_page]
    key_columns: list[str] = list(chunk[0].key) if chunk else []
    columns: list[str] = []
    for r in chunk:
        for row in (r.old, r.new):
            for c in row or {}:
                if c not in columns and c not in key_columns:
                    columns.append(c)
    rows = []
    for r in chunk:
        changed = set(r.changed_columns) if r.op == "changed" else set()
        cells: list[tuple[Cell, Cell | None, bool]] = []
        for c in columns:
            if r.op == "changed":
                old, new = (r.old or {}).get(c), (r.new or {}).get(c)
                cells.append((cell(old), cell(new), True) if c in changed else (cell(new), None, False))
            else:
                row = r.new if r.op == "added" else r.old
                cells.append((cell((row or {}).get(c)), None, False))
        rows.append(DiffRow(r.op, [cell(v) for v in r.key.values()], cells))
    return DiffPage(
        table=d.name,
        columns=columns,
        key_columns=key_columns,
        rows=rows,
        page=page,
        more=more,
        schema=[s.describe() for s in d.schema],
    )


@dataclass
class ConflictView:
    table: str
    key: dict[str, Any]
    key_text: str  # what resolve_conflicts takes to name this row
    kind: str
    resolution: str | None
    columns: list[tuple[str, Cell, Cell, Cell]]  # column, base, ours, theirs


@dataclass
class PlanView:
    name: str
    added: int
    updated: int
    deleted: int
    skipped: int
    conflicts: list[ConflictView]
    more_conflicts: int


def conflict_view(plan: Any, c: Any, doc: dict[str, Any]) -> ConflictView:
    def side(name: str, col: str) -> Cell:
        values = doc[name]
        if values is None:
            return Cell("(no row)", null=True)
        v = values.get(col)
        return cell(v if not isinstance(v, (dict, list)) else str(v))

    key = doc["key"]
    return ConflictView(
        table=c.table,
        key=key,
        key_text=",".join(str(v) for v in key.values()),
        kind=c.kind,
        resolution=c.resolution,
        columns=[(col, side("base", col), side("ours", col), side("theirs", col)) for col in c.columns],
    )


def plan_view(plan: Any, conflict_json: Any, limit: int = 100) -> PlanView:
    return PlanView(
        name=plan.name,
        added=plan.added,
        updated=plan.updated,
        deleted=plan.deleted,
        skipped=plan.skipped,
        conflicts=[conflict_view(plan, c, conflict_json(plan, c)) for c in plan.conflicts[:limit]],
        more_conflicts=max(0, len(plan.conflicts) - limit),
    )
