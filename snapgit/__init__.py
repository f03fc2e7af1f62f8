"""snapgit: version control for the data in a live SQL database.

The Python API is the product as much as the CLI is::

    from snapgit import Repo
    repo = Repo.init(".", db_url="sqlite:///app.db")
    result = repo.commit("nightly snapshot")
    for oid, commit in repo.log():
        print(oid.hex()[:12], commit.message)
"""

from typing import TYPE_CHECKING

from snapgit.version import __version__

__all__ = ["Repo", "SnapError", "__version__"]

if TYPE_CHECKING:
    from snapgit.errors import SnapError
    from snapgit.repo import Repo


def __getattr__(name: str):
    # Imported on first use, so that `snap --version` or `snap log` does not pay for modules
    # it never calls.
    if name == "Repo":
        from snapgit.repo import Repo

        return Repo
    if name == "SnapError":
        from snapgit.errors import SnapError

        return SnapError
    raise AttributeError(f"module 'snapgit' has no attribute {name!r}")
