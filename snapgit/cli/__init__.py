"""The ``snap`` command line: a thin layer over :class:`snapgit.Repo`.

``app`` parses arguments and calls one API method per command; ``render`` prints the results
(tables for people, ``--json`` for programs, progress bars on a terminal).
"""

from snapgit.cli.app import main

__all__ = ["main"]
