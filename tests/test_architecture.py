"""The import rules of docs/architecture.md, checked on every import statement of the
package and the workflow (lazy imports inside functions included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from normstudy.figures.dependencies import PACKAGE_DIR, package_dependencies

ROOT = PACKAGE_DIR.parents[1]
TORCH_SIDE = (
    "data/",
    "models/",
    "norms/",
    "probes/",
    "train/",
    "build.py",
    "buildcheck.py",
    "freeze.py",
    "estimate.py",
    "flops.py",
    "references.py",
    "datacache.py",
)
READERS_OF_TABLES = [
    "tables",
    "schemas",
    "stats_common",
    "comparisons",
    "comparison_schema",
    "pairwise",
    "multiplicity",
    "intervals",
    "power",
    "power_report",
    "ranking",
    "trends",
    "tuning",
    "equivalence",
    "probe_metrics",
    "spectral",
    "comparison_summary",
    "status",
]


def files(module: str) -> list[str]:
    return [str(path.relative_to(PACKAGE_DIR)) for path in package_dependencies(module)]


def workflow_imports() -> set[str]:
    """The package modules the Snakefile and the rule files import."""
    sources = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    found = set()
    for source in sources:
        for match in re.finditer(r"^from (normstudy[\w.]*) import", source.read_text(), re.M):
            found.add(match[1])
    return found


def test_the_catalog_imports_nothing_else_of_the_package():
    for path in sorted((PACKAGE_DIR / "catalog").glob("*.py")):
        outside = [
            f for f in files(f"normstudy.catalog.{path.stem}") if not f.startswith("catalog/")
        ]
        assert outside == [], (path.name, outside)


def test_what_the_workflow_imports_never_reaches_torch():
    modules = workflow_imports()
    assert {"normstudy.grid", "normstudy.cluster", "normstudy.figures.catalog"} <= modules
    for module in sorted(modules):
        reached = [f for f in files(module) if f.startswith(TORCH_SIDE)]
        assert reached == [], (module, reached)


@pytest.mark.parametrize("module", READERS_OF_TABLES)
def test_tables_and_statistics_never_reach_torch(module):
    reached = [f for f in files(f"normstudy.{module}") if f.startswith(TORCH_SIDE)]
    assert reached == [], reached


def test_figures_never_reach_torch_or_the_statistics_tables_writers():
    for path in sorted((PACKAGE_DIR / "figures").glob("*.py")):
        reached = [f for f in files(f"normstudy.figures.{path.stem}") if f.startswith(TORCH_SIDE)]
        assert reached == [], (path.name, reached)


def test_the_torch_side_never_imports_figures_or_statistics():
    statistics = {f"{name}.py" for name in READERS_OF_TABLES} - {
        "schemas.py",
        "spectral.py",
        "probe_metrics.py",
    }
    for prefix in ("data", "models", "norms", "probes", "train"):
        for path in sorted((PACKAGE_DIR / prefix).glob("*.py")):
            reached = set(files(f"normstudy.{prefix}.{path.stem}"))
            assert not any(f.startswith("figures/") for f in reached), path
            assert not reached & statistics, (path, reached & statistics)


def test_lazy_imports_count(tmp_path):
    """An import inside a function is an import: the rules cannot be dodged by deferring."""
    source = "def draw():\n    from normstudy.probes import hessian\n"
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert imports and imports[0].module == "normstudy.probes"
    from normstudy.figures.dependencies import imported_modules

    path = tmp_path / "lazy.py"
    path.write_text(source)
    assert "normstudy.probes.hessian" in imported_modules(Path(path))
