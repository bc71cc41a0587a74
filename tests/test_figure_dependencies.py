"""A figure job's code inputs are its module and what that module imports, no more: a
change to one figure, or to a helper some figures use, redraws only those figures."""

from __future__ import annotations

from pathlib import Path

from normstudy.figures.catalog import FIGURE_NAMES, figure_module
from normstudy.figures.dependencies import figure_code, imported_modules, module_file

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "normstudy"
METRIC_FIGURES = {"acc_vs_depth", "batch_size", "lr_stability", "noise_robustness"}


def code_of(name: str) -> set[str]:
    return {str(Path(path).relative_to(PACKAGE)) for path in figure_code(figure_module(name))}


def test_each_figure_depends_on_its_own_module_and_no_other_figures():
    for name in FIGURE_NAMES:
        code = code_of(name)
        assert f"figures/{name}.py" in code
        others = {f"figures/{other}.py" for other in FIGURE_NAMES if other != name}
        assert not code & others, (name, code & others)


def test_a_shared_helper_reaches_exactly_the_figures_that_import_it():
    users = {name for name in FIGURE_NAMES if "figures/metric_axis.py" in code_of(name)}
    assert users == METRIC_FIGURES
    trajectories = {name for name in FIGURE_NAMES if "figures/trajectories.py" in code_of(name)}
    assert trajectories == {"ics", "smoothness", "norms_training"}
    assert all("figures/style.py" in code_of(name) for name in FIGURE_NAMES)


def test_figures_never_depend_on_training_code():
    for name in FIGURE_NAMES:
        code = code_of(name)
        assert not any(path.startswith(("train", "norms/", "models/", "probes/")) for path in code)


def test_imports_are_read_statically_and_transitively(tmp_path):
    assert module_file("normstudy.figures.style") == PACKAGE / "figures" / "style.py"
    assert module_file("numpy") is None and module_file("normstudy.nothing") is None
    style = imported_modules(PACKAGE / "figures" / "style.py")
    assert "normstudy.comparison_specs" in style and "normstudy.catalog" in style
    # Through style every figure reads the catalogs; none depends on the statistics code.
    for name in FIGURE_NAMES:
        assert "catalog/normalizers.py" in code_of(name)
        assert not {"comparisons.py", "pairwise.py", "power.py"} & code_of(name), name


def test_drawing_every_figure_imports_no_torch():
    """Figure jobs read Parquet alone; torch would add seconds and ~500 MB to each."""
    import subprocess
    import sys

    code = (
        "import sys; from normstudy.figures.registry import load_figures; load_figures(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
