"""snapgit: version control for the data in a live SQL database.

The Python API is the product as much as the CLI is::

    from snapgit import Repo
    repo = Repo.init(".", db_url="sqlite:///app.db")
    result = repo.commit("nightly snapshot")
    for oid, commit in repo.log():
        print(oid.hex()[:12], commit.message)
"""

__version__ = "0.1.0"

from .errors import SnapError  # noqa: E402
from .repo import Repo  # noqa: E402

__all__ = ["Repo", "SnapError", "__version__"]
