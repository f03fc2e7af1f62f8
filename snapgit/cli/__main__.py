"""``python -m snapgit.cli``: the ``snap`` command."""

from snapgit.cli.app import main

if __name__ == "__main__":
    main()
