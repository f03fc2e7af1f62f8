"""Push, clone --restore, push back and pull, with the live databases on SQLite, PostgreSQL and
MariaDB, over a directory remote and S3 (moto): the rows compared through each database's eyes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from snapgit.repo import Repo

META = sa.MetaData()
ITEMS = sa.Table(
    "items",
    META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("price", sa.Numeric(10, 2)),
)


def _rows(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(ITEMS).order_by(ITEMS.c.id))]


def test_round_trip_on_each_engine(
    tmp_path: Path,
    db_kind: str,
    make_db_url: Callable[[str], str],
    make_engine: Callable[[str], sa.Engine],
    remote_url: str,
) -> None:
    source_url, copy_url = make_db_url(db_kind), make_db_url(db_kind)
    source = make_engine(source_url)
    META.create_all(source)
    with source.begin() as conn:
        conn.execute(ITEMS.insert(), [{"id": i, "name": f"item {i}", "price": i / 4} for i in range(500)])
    (tmp_path / "a").mkdir()
    a = Repo.init(tmp_path / "a", source_url)
    a.commit("base")
    a.remote_add("origin", remote_url)
    a.push()

    b, _fetched, _branch, restored = Repo.clone(remote_url, tmp_path / "b", copy_url, restore=True)
    assert restored is not None
    copy = make_engine(copy_url)
    assert _rows(copy) == _rows(source)

    with copy.begin() as conn:
        conn.execute(ITEMS.update().where(ITEMS.c.id < 5).values(name="renamed"))
        conn.execute(ITEMS.delete().where(ITEMS.c.id == 499))
    b.commit("renamed five, dropped one")
    b.push()
    _fetched, merged = a.pull(strategy="backup_wins")
    assert not merged.in_progress
    assert _rows(source) == _rows(copy)
    assert len(_rows(source)) == 499
    assert a.verify_remote("origin", read_data=True).ok
    a.close()
    b.close()
