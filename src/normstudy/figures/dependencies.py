"""Which source files a figure's drawing depends on: the workflow's code inputs of its job.

A figure job re-runs when its code changes; listing every shared module for every figure
would redraw all of them when one colour changes. So each job lists its module and the
package modules that module imports, directly or through others, found statically (the
``import`` statements, read with :mod:`ast`, never executed: the Snakefile reads this
while parsing, without matplotlib or pandas).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "normstudy"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def module_file(module: str) -> Path | None:
    """The source file of package module ``module`` (``normstudy.figures.style``), or
    None for modules outside the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def imported_modules(path: Path) -> set[str]:
    """The package modules ``path`` imports (``from normstudy.x import y`` counts
    ``normstudy.x`` and, if it is a module, ``normstudy.x.y``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if module_file(name) is not None}


@functools.cache
def package_dependencies(module: str) -> tuple[Path, ...]:
    """The files of ``module`` and of every package module it imports, transitively,
    sorted (package ``__init__`` files of the parents are left out: they are imported
    on the way, but a figure does not use what they define)."""
    seen: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        pending.extend(imported_modules(path) - set(seen))
    files = {path for name, path in seen.items() if name == module or path.name != "__init__.py"}
    return tuple(sorted(files))


def figure_code(module_path: str) -> list[str]:
    """The files a figure's job depends on, for its module ``figures/<name>.py``
    (relative to the package directory)."""
    module = PACKAGE + "." + module_path.removesuffix(".py").replace("/", ".")
    return [str(path) for path in package_dependencies(module)]
