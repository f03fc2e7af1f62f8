# Sourced by scripts/test and scripts/demo (from the repo root): make ./.venv and install the
# project into it. Needs only python3 (3.11+) and PyPI.
#
#   ensure_venv            pip install -e .
#   ensure_venv test       pip install -e '.[test]'
#
# The install is skipped when pyproject.toml, setup.py, the C extension's source and the
# interpreter are the same as at the last successful install with these extras (a stamp file in
# .venv) and snapgit is still installed. New modules need no reinstall: the install is editable.

ensure_venv() {
    local extras=${1:-}
    local spec=. stamp=.venv/.installed
    if [ -n "$extras" ]; then
        spec=".[$extras]"
        stamp="$stamp-$extras"
    fi

    if ! .venv/bin/python -c '' 2>/dev/null; then
        echo "creating .venv" >&2
        rm -rf .venv
        "${PYTHON:-python3}" -m venv .venv
    fi

    local want
    # the C extension is built at install: its source is part of what the stamp stands for
    want="$PWD $(.venv/bin/python -c 'import hashlib, sys
h = hashlib.sha256()
for f in ("pyproject.toml", "setup.py", "snapgit/_native.c"):
    h.update(open(f, "rb").read())
print(sys.version.split()[0], h.hexdigest())')"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && .venv/bin/python -c 'import importlib.metadata as m; m.version("snapgit")' 2>/dev/null; then
        return 0
    fi

    echo "installing snapgit ($spec) into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$want" > "$stamp"
}
