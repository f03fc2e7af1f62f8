"""Fail when a module of the package uses another module's private (``_name``) names.

    python scripts/check_private_imports.py [PACKAGE_DIR]

What a module needs from another gets a public name in the module that owns it. This looks at
two forms, which between them are how one module reaches into another:

* ``from snapgit.x import _name`` (also inside functions), and
* ``mod._name`` where ``mod`` is a name bound to a module of the package
  (``from snapgit.store import pack as pack_mod``, ``import snapgit.store.pack``).

Dunder names (``__version__``) are public. A private name of the package's own C extension
(``snapgit._native``) is the extension itself, not a name inside a module.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "snapgit"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def modules_of(root: Path) -> set[str]:
    names = {module_name(root, p) for p in root.rglob("*.py")}
    names |= {module_name(root, p.with_name(p.name.split(".")[0] + ".py")) for p in root.glob("*.so")}
    return names


def check(root: Path) -> list[str]:
    modules = modules_of(root)
    problems = []
    for path in sorted(root.rglob("*.py")):
        me = module_name(root, path)
        tree = ast.parse(path.read_text(), str(path))
        aliases: dict[str, str] = {}  # local name -> module of the package it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith(PACKAGE + "."):
                        if a.asname:
                            aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module != PACKAGE and not node.module.startswith(PACKAGE + "."):
                    continue
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in modules:
                        aliases[a.asname or a.name] = full
                        if is_private(a.name) and full != f"{PACKAGE}._native":
                            problems.append(f"{path}:{node.lineno}: {me} imports the private module {full}")
                    elif is_private(a.name) and node.module != me:
                        problems.append(f"{path}:{node.lineno}: {me} imports {a.name} from {node.module}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and is_private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != me
                and aliases[node.value.id] != f"{PACKAGE}._native"
            ):
                problems.append(f"{path}:{node.lineno}: {me} uses {node.attr} of {aliases[node.value.id]}")
    return problems


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else PACKAGE)
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} private name(s) used across modules: give them a public name where they live")
        return 1
    print("no private names used across modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
