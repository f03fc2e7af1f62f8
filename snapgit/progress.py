"""How long-running operations report progress: the one protocol every layer takes.

A commit, a restore or a merge calls ``table`` when it starts on a table (with the rows it
expects, when known) and ``advance`` as rows pass. The library never draws anything: the CLI
passes an object that draws a bar on a terminal, a program passes its own or nothing.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress"]


class Progress(Protocol):
    def table(self, name: str, total: int | None) -> None: ...

    def advance(self, rows: int) -> None: ...
