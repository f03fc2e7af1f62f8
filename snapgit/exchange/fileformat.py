"""The export file format's names: what export.py writes and importer.py checks.

An export file (docs/format.md, "Export files") says what it is in its metadata: ``format`` is
:data:`JSON_FORMAT` for the one-document JSON layout or :data:`CSV_FORMAT` for a directory of
CSV files described by its :data:`MANIFEST`, and ``format_version`` is :data:`FORMAT_VERSION`,
which is independent of the store's version. An incremental CSV export of a keyless table
adds the column :data:`OCCURRENCE_COLUMN` (which copy of a row it is).

Table names become file names, in both directions: :func:`check_name` refuses one that could
leave the export directory, and both sides raise the same :class:`ExportError`.
"""

from __future__ import annotations

from typing import Any

from snapgit.errors import SnapError

__all__ = [
    "ExportError",
    "FORMATS",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "JSON_FORMAT",
    "CSV_FORMAT",
    "MANIFEST",
    "OCCURRENCE_COLUMN",
    "check_name",
]

FORMATS = ("json", "csv", "sql")  # what `snap export --format` takes
# 2: a value may be tagged "spelled" (docs/format.md 19.1); a file of version 1 is a file of
# version 2 without such values, so both are read
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
JSON_FORMAT = "snapgit-export"
CSV_FORMAT = "snapgit-csv-export"
MANIFEST = "manifest.json"

# the extra last column of a keyless table's rows in an incremental CSV export
OCCURRENCE_COLUMN = "#occurrence"


class ExportError(SnapError):
    """An export that cannot be written, or a name in an export file that cannot be used."""


def check_name(name: Any, what: str = "table name") -> str:
    """Refuse a name that could leave the export directory when used as a file name."""
    if type(name) is not str or not name:
        raise ExportError(f"{what} {name!r} is not a non-empty string")
    bad = None
    if name in (".", ".."):
        bad = "is a relative directory"
    elif "/" in name or "\\" in name:
        bad = "contains a path separator"
    elif "\x00" in name:
        bad = "contains a NUL character"
    elif name.startswith("."):
        bad = "starts with a dot"
    elif len(name.encode("utf-8")) > 200:
        bad = "is too long for a file name"
    if bad:
        raise ExportError(f"{what} {name!r} {bad}: refused, it could escape the export directory")
    return name
