"""Figures: every figure renders from small synthetic tables, skips with a reason when its
data is missing, marks diverged cells, and the numbers it shows are the right ones."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats as sps

from normstudy.figures import (
    FIGURE_NAMES,
    FIGURES,
    Tables,
    curves,
    figure_tables,
    gamma_beta,
    intervals,
    lr_stability,
    mean_ci,
    metric_axis,
    metrics,
    norm_table,
    ols,
    probe_records,
    registry,
    render_figure,
    render_from_dir,
    report_caption,
    selection,
    style,
)
from normstudy.registry import UnknownNameError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "normstudy"
ROLES = ("norm_gamma", "norm_beta", "weight", "head")

# ------------------------------------------------------------------ synthetic tables


def cell(study: str, axes: list[str], index: int, **values) -> dict:
    """One row of cells.parquet with the columns the figures read."""
    row = {
        "study": study,
        "cell_id": f"{study}-{index}",
        "axes": axes,
        "dataset": "digits",
        "model": "mlp",
        "depth": 3,
        "norm": "batch",
        "freeze": "all",
        "seed": 0,
        "lr": 0.1,
        "batch_size": 32,
        "shuffle": True,
        "status": "ok",
        "num_classes": 10,
        "dataset_options.n_per_class": math.nan,
    }
    row.update(values)
    accuracy = row.pop("acc", 0.8)
    diverged = row["status"] == "diverged"
    chance = 1 / row["num_classes"]
    for split in ("train", "val", "test"):
        row[f"final_{split}_acc"] = chance if diverged else accuracy
        row[f"final_{split}_loss"] = math.nan if diverged else 0.5
    row["best_val_acc"] = chance if diverged else accuracy
    row["generalization_gap"] = 0.0
    return row


def grid(study: str, axes: dict[str, list], accuracy, diverged=lambda point: False) -> list:
    names = list(axes)
    rows = []
    for index, values in enumerate(itertools.product(*axes.values())):
        point = dict(zip(names, values, strict=True))
        status = "diverged" if diverged(point) else "ok"
        rows.append(cell(study, names, index, status=status, acc=accuracy(point), **point))
    return rows


def synthetic_cells() -> pd.DataFrame:
    rows = grid(
        "depth",
        {"depth": [2, 8], "freeze": ["all", "norm"], "seed": [0, 1]},
        lambda p: 0.6 + 0.02 * p["depth"] + (0.1 if p["freeze"] == "all" else 0) + 0.01 * p["seed"],
        lambda p: p == {"depth": 8, "freeze": "norm", "seed": 1},
    )
    zoo = {"batch": [0.90, 0.92, 0.94], "layer": [0.80, 0.84, 0.82], "none": [0.7, 0.75, 0.1]}
    rows += grid(
        "zoo",
        {"norm": ["batch", "layer", "none"], "seed": [0, 1, 2]},
        lambda p: zoo[p["norm"]][p["seed"]],
        lambda p: p == {"norm": "none", "seed": 2},
    )
    rows += grid(
        "lr",
        {"norm": ["batch", "none"], "lr": [0.1, 1.0, 3.0], "seed": [0, 1]},
        lambda p: 0.9 - 0.05 * p["seed"],
        lambda p: p["norm"] == "none" and p["lr"] >= 1.0,
    )
    rows += grid(
        "bs",
        {"norm": ["batch", "batch_train"], "batch_size": [8, 128], "seed": [0, 1]},
        lambda p: 0.9 - (0.1 if p["norm"] == "batch_train" else 0) + 0.01 * p["seed"],
    )
    rows += [
        {**row, "num_classes": 5, "dataset": "gaussian_noise"}
        for row in grid(
            "noise",
            {
                "dataset_options.n_per_class": [5.0, 80.0],
                "norm": ["batch", "none"],
                "shuffle": [True, False],
                "seed": [0, 1],
            },
            lambda p: 0.5 + 0.005 * p["dataset_options.n_per_class"] + 0.02 * p["seed"],
        )
    ]
    frame = pd.DataFrame(rows)
    failed = frame["status"] == "diverged"
    frame.loc[failed, "final_test_acc"] = 1 / frame.loc[failed, "num_classes"]
    return frame


def synthetic_curves(cells: pd.DataFrame) -> pd.DataFrame:
    """Three epochs of curves for the cells of the depth and lr studies (the others have
    none, which the curves figure must note rather than fail on)."""
    rows = []
    cells = cells[cells["study"].isin(["depth", "lr"])]
    for _, row in cells.drop_duplicates("cell_id").iterrows():
        diverged = row["status"] == "diverged"
        for epoch in (1, 2, 3):
            if diverged and epoch == 3:
                break
            loss = math.inf if diverged and epoch == 2 else 2.0 / epoch + 0.01 * row["seed"]
            accuracy = row["final_test_acc"] * epoch / 3
            rows.append(
                {
                    "cell_id": row["cell_id"],
                    "epoch": epoch,
                    "step": 10 * epoch,
                    "lr": 0.1,
                    "train_loss": loss,
                    "train_acc": min(1.0, accuracy + 0.05),
                    "val_loss": loss,
                    "val_acc": accuracy,
                    "test_loss": loss,
                    "test_acc": accuracy,
                    "seconds": 1.0,
                }
            )
    return pd.DataFrame(rows)


def record(cell_id, epoch, probe, key, value, layer=("model", -1)) -> dict:
    return {
        "cell_id": cell_id,
        "epoch": epoch,
        "step": 10 * epoch,
        "probe": probe,
        "layer": layer[0],
        "layer_index": layer[1],
        "key": key,
        "value": float(value),
    }


def histogram_records(cell_id, epoch, rng, spread) -> list[dict]:
    edges = np.linspace(-2, 2, 21)
    records = []
    for what, center in (("gamma", 0.5), ("beta", 0.0)):
        values = center + spread * rng.standard_normal(64)
        counts, _ = np.histogram(values, bins=edges)
        records += [
            record(cell_id, epoch, "norm_params", f"hist_{what}/{edge:g}", count)
            for edge, count in zip(edges[:-1], counts, strict=True)
        ]
        records.append(record(cell_id, epoch, "norm_params", f"hist_{what}_under", 0))
        records.append(
            record(cell_id, epoch, "norm_params", f"hist_{what}_over", np.sum(values > 2))
        )
    records.append(record(cell_id, epoch, "norm_params", "num_gamma", 64))
    records.append(record(cell_id, epoch, "norm_params", "frac_abs_gamma_below/0.05", 0.25))
    return records


def zoo_records(cell_id, epoch, rng) -> list[dict]:
    records = [record(cell_id, epoch, "grad_norms", "grad_abs_mean/all", 0.01 * (1 + epoch))]
    records += [
        record(cell_id, epoch, "grad_norms", f"grad_abs_mean/{role}", rng.uniform(1e-3, 1e-1))
        for role in ROLES
    ]
    records += [record(cell_id, epoch, "hessian", "mode_train", 1.0)]
    records += [
        record(cell_id, epoch, "hessian", f"lambda_{i}", 10.0 / i + rng.uniform(0, 1))
        for i in (1, 2, 3)
    ]
    records.append(record(cell_id, epoch, "hessian", "outlier_ratio", 3.0 + rng.uniform()))
    for vector in (0, 1):
        nodes = np.sort(rng.normal(0, 2, 6))
        weights = rng.dirichlet(np.ones(6))
        records += [
            record(cell_id, epoch, "hessian", f"slq_node/{vector}/{j}", node)
            for j, node in enumerate(nodes)
        ]
        records += [
            record(cell_id, epoch, "hessian", f"slq_weight/{vector}/{j}", weight)
            for j, weight in enumerate(weights)
        ]
    records.append(record(cell_id, epoch, "propagation", "input_correlation", 0.97))
    for layer in range(3):
        where = (f"body.{layer}", layer)
        records += [
            record(cell_id, epoch, "propagation", "correlation", 0.9 - 0.1 * layer, where),
            record(cell_id, epoch, "grad_confusion", "grad_correlation_mean", 0.3, where),
            record(cell_id, epoch, "grad_confusion", "grad_norm", 1.0 + layer, where),
        ]
    records.append(record(cell_id, epoch, "grad_confusion", "grad_correlation_mean", 0.2))
    for layer in range(3):
        where = (f"body.{layer}", layer)
        records += [
            record(cell_id, epoch, "ics", "ics_l2", layer * rng.uniform(0.5, 1.5), where),
            record(cell_id, epoch, "ics", "ics_cosine", 1.0 - 0.2 * layer, where),
            record(cell_id, epoch, "norms", "activation_norm", 2.0 ** (layer + epoch), where),
            record(cell_id, epoch, "norms", "activation_grad_norm", rng.uniform(0.1, 1), where),
            record(cell_id, epoch, "norms", "weight_norm", 3.0 + epoch, where),
        ]
    records += [
        record(cell_id, epoch, "smoothness", "loss_range", rng.uniform(0.1, 1.0)),
        record(cell_id, epoch, "smoothness", "grad_change_max", rng.uniform(0.1, 1.0)),
        record(cell_id, epoch, "smoothness", "beta_smoothness", rng.uniform(1.0, 10.0)),
    ]
    return records


def synthetic_probes(cells: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    records = []
    for _, row in cells.iterrows():
        failed = row["status"] == "diverged"
        if row["study"] == "depth":
            records += histogram_records(row["cell_id"], 0, rng, 0.3)
            if not failed:
                spread = 0.8 if row["freeze"] == "norm" else 0.3
                records += histogram_records(row["cell_id"], 3, rng, spread)
        if row["study"] == "zoo":
            for epoch in (0, 1, 2):
                records += zoo_records(row["cell_id"], epoch, rng)
        if failed:
            for probe in ("norm_params", "grad_norms", "hessian", "propagation"):
                records.append(record(row["cell_id"], 3, probe, "failed", 1.0))
    return pd.DataFrame(records)


def synthetic_ols() -> pd.DataFrame:
    rows = []
    for d, kappa, method in itertools.product((2, 3), (10.0, 1000.0), ("gd", "bn")):
        w = np.array([0.5, -0.3, 0.2][:d])
        for step in range(8):
            diverges = method == "gd" and kappa == 1000.0
            scale = 3.0**step if diverges else 0.5**step
            loss = math.inf if diverges and step >= 6 else scale
            point = w * (scale if diverges else 1 - scale)
            rows.append(
                {
                    "kappa": kappa,
                    "d": d,
                    "method": method,
                    "lr": 0.5,
                    "step": step,
                    "loss": loss,
                    "w_0": point[0],
                    "w_1": point[1],
                    "w_2": point[2] if d == 3 else math.nan,
                }
            )
    return pd.DataFrame(rows)


def synthetic_tables() -> Tables:
    cells = synthetic_cells()
    return Tables(
        cells=cells,
        curves=synthetic_curves(cells),
        probes=synthetic_probes(cells),
        ols=synthetic_ols(),
    )


def write_tables(tables: Tables, tables_dir: Path) -> None:
    tables_dir.mkdir(parents=True, exist_ok=True)
    for name in ("cells", "curves", "probes", "ols"):
        getattr(tables, name).to_parquet(tables_dir / f"{name}.parquet")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every figure rendered once from the synthetic tables, each reading only the tables
    the catalog says it needs (so a missing declaration shows up as a skip)."""
    tables_dir = tmp_path_factory.mktemp("tables")
    write_tables(synthetic_tables(), tables_dir)
    out_dir = tmp_path_factory.mktemp("figures")
    (out_dir / "curves-stale.png").write_bytes(b"old")
    results = {name: render_from_dir(name, tables_dir, out_dir) for name in FIGURE_NAMES}
    return out_dir, results


# ----------------------------------------------------------------------- rendering


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_every_figure_renders_png_and_pdf(rendered, name):
    out_dir, results = rendered
    result = results[name]
    assert result.skipped is None, result.skipped
    pngs = [p for p in result.written if p.suffix == ".png"]
    pdfs = [p for p in result.written if p.suffix == ".pdf"]
    assert pngs and len(pngs) == len(pdfs)
    for path in result.written:
        assert path.parent == out_dir
        assert path.name == name + path.suffix or path.name.startswith(name + "-")
        assert path.stat().st_size > 0
    for path in pngs:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for path in pdfs:
        assert path.read_bytes()[:5] == b"%PDF-"
    assert not (out_dir / f"{name}.skipped.txt").exists()


def test_rendering_leaves_no_temporary_or_stale_files(rendered):
    out_dir, results = rendered
    written = {p.name for r in results.values() for p in r.written}
    on_disk = {p.name for p in out_dir.iterdir()}
    assert on_disk == written
    assert "curves-stale.png" not in on_disk


def test_per_study_figures_write_one_file_per_study_with_data(rendered):
    _, results = rendered
    stems = {p.stem for p in results["hessian"].written}
    assert stems == {"hessian-zoo"}
    assert {p.stem for p in results["gamma_beta"].written} == {"gamma_beta-depth"}
    assert {p.stem for p in results["curves"].written} == {"curves-depth", "curves-lr"}
    assert "study zoo: no curves" in results["curves"].notes


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("acc_vs_depth", "diverged cells: 1"),
        ("lr_stability", "diverged cells: 4"),  # 4 cells, each drawn in 2 metrics' panels
        ("curves", "diverged cells: 1"),
        ("norm_table", "1 diverged"),
        ("cd_diagram", "1 diverged"),
        ("grad_roles", "1 of 3 cells diverged"),
        ("hessian", "1 of 9 cells diverged"),
        ("propagation", "diverged cells: 1"),
        ("gamma_beta", "diverged cells: 1"),
        ("ols", "runs that diverged"),
        ("batch_size", "diverged cells: 0"),
        ("noise_robustness", "diverged cells: 0"),
    ],
)
def test_diverged_cells_are_marked(rendered, name, expected):
    _, results = rendered
    texts = [" ".join(text.split()) for text in results[name].texts]
    assert any(expected in text for text in texts), texts


def test_hessian_counts_each_diverged_cell_once_over_probe_labels(tmp_path):
    """Two Hessian probes (train and eval mode) give each panel two rows of the figure;
    the zoo's one diverged cell is still one diverged cell."""
    tables = synthetic_tables()
    hessian = tables.probes[tables.probes["probe"] == "hessian"].copy()
    hessian["probe"] = "hessian_eval"
    hessian["key"] = hessian["key"].replace("mode_train", "mode_eval")
    tables.probes = pd.concat([tables.probes, hessian], ignore_index=True)
    write_tables(tables, tmp_path / "tables")
    result = render_from_dir("hessian", tmp_path / "tables", tmp_path / "figures")
    texts = " ".join(" ".join(text.split()) for text in result.texts)
    assert "[hessian_eval, eval mode]" in texts and "[hessian, train mode]" in texts
    assert "diverged cells: 1 (failed records left out)" in texts


def test_noise_robustness_names_the_papers_conditions(rendered):
    texts = " ".join(rendered[1]["noise_robustness"].texts)
    assert "BatchNorm, shuffled (BN_reg)" in texts
    assert "BatchNorm, not shuffled (BN_without_reg)" in texts


def test_lr_stability_legend_gives_the_max_stable_lr(rendered):
    texts = " ".join(rendered[1]["lr_stability"].texts)
    assert "BatchNorm (max stable lr 3; 0 diverged)" in texts
    assert "no normalization (max stable lr 0.1; 4 diverged)" in texts


def test_max_stable_lr_stops_below_the_first_divergence():
    rows = pd.DataFrame(
        {
            "lr": [0.1, 0.3, 1.0, 3.0],
            "status": ["ok", "diverged", "ok", "diverged"],
            "final_train_acc": [0.9, 0.1, 0.9, 0.1],
        }
    )
    assert lr_stability.max_stable_lr(rows) == 0.1
    assert lr_stability.max_stable_lr(rows.assign(status="diverged")) is None
    assert lr_stability.max_stable_lr(rows.assign(status="ok")) == 3.0


# --------------------------------------------------------------------------- skipping

SKIP_REASONS = {
    "acc_vs_depth": "'depth' and a 'freeze'",
    "norm_table": "'norm' grid axis",
    "curves": "curves table is empty",
    "gamma_beta": "no norm_params",
    "grad_roles": "no grad_norms",
    "hessian": "no hessian",
    "propagation": "no propagation",
    "batch_size": "'batch_size' and a 'norm'",
    "lr_stability": "'lr' and a 'norm'",
    "noise_robustness": "dataset_options.n_per_class",
    "ols": "no ols.parquet",
    "cd_diagram": "'norm' grid axis",
    "ics": "no ics probe",
    "smoothness": "no smoothness probe",
    "norms_training": "no norms probe",
}


def test_skip_reasons_cover_every_figure():
    assert set(SKIP_REASONS) == set(FIGURE_NAMES)


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_figure_without_its_data_is_skipped_with_a_reason(tmp_path, name):
    cells = pd.DataFrame(grid("seeds_only", {"seed": [0, 1]}, lambda p: 0.5))
    result = render_figure(name, Tables(cells=cells), tmp_path)
    assert result.written == []
    assert SKIP_REASONS[name] in result.skipped
    assert (tmp_path / f"{name}.skipped.txt").read_text().strip() == result.skipped
    assert not list(tmp_path.glob("*.png"))


def test_a_later_successful_render_removes_the_skip_note(tmp_path):
    cells = pd.DataFrame(grid("seeds_only", {"seed": [0, 1]}, lambda p: 0.5))
    render_figure("lr_stability", Tables(cells=cells), tmp_path)
    assert (tmp_path / "lr_stability.skipped.txt").exists()
    full = synthetic_cells()
    render_figure("lr_stability", Tables(cells=full[full["study"] == "lr"]), tmp_path)
    assert not (tmp_path / "lr_stability.skipped.txt").exists()
    assert (tmp_path / "lr_stability.png").exists()


def test_ols_table_without_the_needed_columns_is_skipped(tmp_path):
    tables = Tables(cells=synthetic_cells(), ols=synthetic_ols().drop(columns=["w_1"]))
    assert "w_1" in render_figure("ols", tables, tmp_path).skipped


def test_unknown_figure_lists_the_valid_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="acc_vs_depth"):
        render_figure("no_such_figure", synthetic_tables(), tmp_path)


# -------------------------------------------------------------------------- numbers


def test_mean_ci_is_the_student_t_interval():
    values = [0.81, 0.85, 0.9, 0.72, 0.88]
    mean, low, high, n = mean_ci(values)
    reference = sps.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert n == 5
    assert mean == pytest.approx(np.mean(values))
    assert (low, high) == pytest.approx((reference.low, reference.high))
    single = mean_ci([0.5])
    assert single[0] == 0.5 and math.isnan(single[1]) and math.isnan(single[2])
    assert mean_ci([0.5, 0.5, 0.5])[1:3] == (0.5, 0.5)
    assert mean_ci([0.4, math.nan, 0.6])[3] == 2


def test_summaries_count_diverged_cells_at_chance():
    cells = synthetic_cells()
    zoo = cells[cells["study"] == "zoo"]
    summary = intervals.summarize(zoo, ["norm"], "final_test_acc").set_index("norm")
    expected = mean_ci([0.7, 0.75, 0.1])
    assert summary.loc["none", "n_diverged"] == 1
    assert summary.loc["none", "mean"] == pytest.approx(expected[0])
    assert summary.loc["none", "ci_low"] == pytest.approx(expected[1])
    assert summary.loc["batch", "n_diverged"] == 0


def test_log_summaries_are_geometric_means():
    frame = pd.DataFrame({"x": [0, 0, 0], "value": [1.0, 100.0, -5.0]})
    summary = intervals.summarize_series(frame, ["x"], "value", log=True)
    assert summary["mean"].iloc[0] == pytest.approx(10.0)
    assert summary["n"].iloc[0] == 2


def test_norm_table_marks_the_best_per_column(rendered):
    out_dir, _ = rendered
    table = norm_table.read_csv(out_dir / "norm_table.csv")
    assert set(table.columns) == set(norm_table.CSV_COLUMNS)
    for column, rows in table.groupby("column"):
        best = rows.loc[rows["test_acc_mean"] == rows["test_acc_mean"].max(), "norm"]
        assert set(rows.loc[rows["best"], "norm"]) == set(best), column
    zoo = table[table["study"] == "zoo"].set_index("norm")
    assert list(zoo.index[zoo["best"]]) == ["batch"]
    expected = mean_ci([0.90, 0.92, 0.94])
    assert zoo.loc["batch", "test_acc_ci_low"] == pytest.approx(expected[1])
    assert zoo.loc["none", "n_diverged"] == 1
    assert json.loads(zoo.loc["batch", "condition"]) == {}
    markdown = (out_dir / "norm_table.md").read_text()
    zoo_column = [line for line in markdown.splitlines() if line.startswith("| BatchNorm")][0]
    # Three seeds: the mean, the seeds' range and n, no "±" that would read as precise.
    assert f"**{100 * expected[0]:.1f} [90.0–94.0] n=3**" in zoo_column
    assert "±" not in markdown.split("\n\n")[0]
    none_row = [line for line in markdown.splitlines() if line.startswith("| no normalization")]
    assert "(1 diverged)" in none_row[0]


def test_norm_table_splits_into_one_heatmap_per_study_when_wide(tmp_path, monkeypatch):
    monkeypatch.setattr(norm_table, "MAX_COLUMNS", 3)
    cells = synthetic_cells()
    tables = Tables(cells=cells[cells["study"].isin(["lr", "zoo"])])
    result = render_figure("norm_table", tables, tmp_path)
    assert {p.name for p in result.written} == {
        "norm_table.csv",
        "norm_table.md",
        "norm_table-lr.png",
        "norm_table-lr.pdf",
        "norm_table-zoo.png",
        "norm_table-zoo.pdf",
    }


def test_many_lines_get_error_bars_instead_of_bands():
    norms = ["batch", "layer", "group", "instance", "weight", "none"]
    cells = pd.DataFrame(grid("many", {"norm": norms, "seed": [0, 1]}, lambda p: 0.5))
    few = cells[cells["norm"].isin(norms[:5])]
    assert [
        line.band for line in selection.panels_for(Tables(cells), "many", ["norm"])[0].lines
    ] == [False] * 6
    assert all(line.band for line in selection.panels_for(Tables(few), "many", ["norm"])[0].lines)


def test_norm_table_marks_every_tied_best():
    table = pd.DataFrame(
        {
            "column": ["a", "a", "a", "b", "b"],
            "test_acc_mean": [0.9, 0.9, 0.8, math.nan, 0.5],
        }
    )
    assert norm_table.best_flags(table).tolist() == [True, True, False, False, True]


def test_gamma_histograms_pool_counts_over_cells():
    records = pd.DataFrame(
        [
            record("a", 1, "norm_params", "hist_gamma/-1", 2),
            record("a", 1, "norm_params", "hist_gamma/0", 3),
            record("b", 1, "norm_params", "hist_gamma/-1", 1),
            record("b", 1, "norm_params", "hist_gamma/0", 0),
            record("b", 1, "norm_params", "hist_gamma_over", 4),
        ]
    )
    edges, counts, outside = gamma_beta.histogram(records, "gamma")
    assert edges.tolist() == [-1.0, 0.0, 1.0]
    assert counts.tolist() == [3.0, 3.0]
    assert outside == 4
    assert gamma_beta.fractions(counts, outside).tolist() == [0.3, 0.3]


def test_probe_times_are_fractional_epochs_without_duplicates():
    tables = synthetic_tables()
    tables.probes = pd.DataFrame(
        [
            record("depth-0", 1, "grad_norms", "grad_abs_mean/all", 1.0),
            record("depth-0", 1, "grad_norms", "grad_abs_mean/all", 2.0),
            {**record("depth-0", 1, "grad_norms", "grad_abs_mean/all", 3.0), "step": 15},
            record("depth-0", 1, "grad_norms", "failed", 1.0),
            record("zoo-0", 1, "grad_norms", "grad_abs_mean/all", 4.0),
        ]
    )
    timed = probe_records.timed_records(tables, ["grad_norms"])
    assert timed["time"].tolist() == [1.0, 1.5, 1.0]
    assert timed["value"].tolist() == [2.0, 3.0, 4.0]


# -------------------------------------------------------------- tables and registry


def test_tables_load_reads_what_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match="cells.parquet"):
        Tables.load(tmp_path)
    synthetic_cells().to_parquet(tmp_path / "cells.parquet")
    tables = Tables.load(tmp_path)
    assert tables.curves.empty and "test_acc" in tables.curves.columns
    assert tables.probes.empty and "key" in tables.probes.columns
    assert tables.comparisons is None and tables.ols is None
    assert tables.study_axes()["lr"] == ["norm", "lr", "seed"]
    synthetic_ols().to_parquet(tmp_path / "ols.parquet")
    assert len(Tables.load(tmp_path).ols) == len(synthetic_ols())


def test_tables_load_reads_only_the_tables_asked_for(tmp_path):
    write_tables(synthetic_tables(), tmp_path)
    tables = Tables.load(tmp_path, ["cells", "curves"])
    assert not tables.curves.empty
    assert tables.probes.empty and tables.ols is None
    assert not Tables.load(tmp_path).probes.empty
    with pytest.raises(ValueError, match="valid tables"):
        Tables.load(tmp_path, ["cells", "probs"])
    assert figure_tables("hessian") == ("cells.parquet", "curves.parquet", "probes.parquet")
    assert figure_tables("acc_vs_depth") == ("cells.parquet",)


def test_registry_matches_the_catalog():
    assert FIGURES.names() == sorted(FIGURE_NAMES)
    for name in FIGURE_NAMES:
        spec = FIGURES.get(name)
        assert (PACKAGE / spec.module).is_file()
        assert spec.title and spec.caption


def test_a_figure_must_live_in_the_module_the_catalog_names():
    def render(tables, out_dir):
        return registry.FigureResult("ols")

    render.__module__ = "normstudy.figures.hessian"
    with pytest.raises(ValueError, match="figures/ols.py"):
        registry.register_figure("ols")(render)


def test_catalog_imports_no_plotting_or_torch():
    code = (
        "import sys, normstudy.figures.catalog as c; "
        "print(sorted(m for m in ('matplotlib', 'pandas', 'torch') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_report_caption_file_is_generated_from_the_catalog():
    assert (ROOT / "workflow" / "report" / "figure.rst").read_text() == report_caption()


@pytest.mark.parametrize("name", [*FIGURE_NAMES, "not_a_figure"])
def test_report_caption_renders_as_valid_rst(name):
    jinja2 = pytest.importorskip("jinja2")
    docutils_core = pytest.importorskip("docutils.core")
    snakemake = types.SimpleNamespace(wildcards=types.SimpleNamespace(figure=name))
    text = jinja2.Template(report_caption()).render(snakemake=snakemake)
    expected = FIGURES.get(name).title if name in FIGURE_NAMES else "not_a_figure"
    assert expected in text
    docutils_core.publish_doctree(text, settings_overrides={"halt_level": 2})
    workflow = (ROOT / "workflow" / "report" / "workflow.rst").read_text()
    docutils_core.publish_doctree(workflow, settings_overrides={"halt_level": 2})


# ----------------------------------------------------------- records of real probes


def test_probe_figures_render_from_records_of_real_probes(tmp_path):
    """A tiny cell trained with the real probes: the probe figures read their records."""
    from normstudy.train import train_cell

    config = {
        "dataset": "digits",
        "model": "mlp",
        "depth": 2,
        "width": 8,
        "freeze": "norm",
        "epochs": 1,
        "batch_size": 128,
        "augment": False,
        "probes": [
            "grad_norms",
            "norm_params",
            "propagation",
            {"name": "grad_confusion", "options": {"n_batches": 2}},
            {
                "name": "hessian",
                "options": {"n_samples": 64, "k": 3, "lanczos_steps": 6, "n_vectors": 1},
            },
        ],
    }
    summary = train_cell(config, tmp_path / "cell", threads=1)
    cells = pd.DataFrame(
        [
            cell(
                "real",
                ["seed"],
                0,
                cell_id="real",
                depth=2,
                freeze="norm",
                acc=summary["final"]["test_acc"],
            )
        ]
    )
    curves = pd.read_parquet(tmp_path / "cell" / "curves.parquet").assign(cell_id="real")
    probes = pd.read_parquet(tmp_path / "cell" / "probes.parquet").assign(cell_id="real")
    tables = Tables(cells=cells, curves=curves, probes=probes)
    for name in ("gamma_beta", "grad_roles", "hessian", "propagation"):
        result = render_figure(name, tables, tmp_path / "figures")
        assert result.skipped is None, (name, result.skipped)
        assert {p.name for p in result.written} == {f"{name}-real.png", f"{name}-real.pdf"}


# ------------------------------------------------- nothing impossible, few seeds shown as such


def spread_cells(seeds: int) -> pd.DataFrame:
    """One study, two depths, ``seeds`` seeds: one at 10%, the rest at 100% test accuracy,
    so that a Student-t interval over them reaches beyond 100% (and below 0% with 2)."""
    values = np.array([0.1] + [1.0] * (seeds - 1))
    return pd.DataFrame(
        grid(
            "spread",
            {"depth": [2, 8], "freeze": ["all", "norm"], "seed": list(range(seeds))},
            lambda p: float(values[p["seed"]]),
        )
    )


def accuracy_figure(cells: pd.DataFrame):
    return metric_axis.metric_figure(
        Tables(cells), ["spread"], "depth", ["freeze"], ["final_test_acc"]
    )


def data_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_lines()]


def test_with_few_seeds_each_seed_is_a_dot_and_no_interval_is_drawn():
    assert metrics.MIN_SEEDS_FOR_INTERVAL == 5
    fig = accuracy_figure(spread_cells(2))
    for ax in data_axes(fig):
        dots = [line for line in ax.get_lines() if intervals.is_seed_dots(line)]
        assert dots, "the seeds' values are drawn as points"
        assert sum(len(line.get_ydata()) for line in dots) == 2 * 2 * 2  # depths x lines x seeds
        assert not [c for c in ax.collections if c.get_gid() == intervals.INTERVAL_GID]
        ranges = intervals.drawn_intervals(ax)
        assert ranges and all(10 - 1e-9 <= low and high <= 100 + 1e-9 for low, high in ranges)


def test_with_enough_seeds_the_interval_stays_within_the_metrics_range():
    cells = spread_cells(6)
    assert mean_ci([0.1] + [1.0] * 5)[2] > 1.0, "the unclipped t-interval overshoots 100%"
    fig = accuracy_figure(cells)
    accuracy = metrics.METRICS["final_test_acc"]
    for ax in data_axes(fig):
        bands = [c for c in ax.collections if c.get_gid() == intervals.INTERVAL_GID]
        assert bands and not [line for line in ax.get_lines() if intervals.is_seed_dots(line)]
        for low, high in intervals.drawn_intervals(ax):
            assert accuracy.low <= low and high <= accuracy.high
        bottom, top = ax.get_ylim()
        assert top <= 100 + 0.06 * 100 + 1e-9 and bottom >= -0.06 * 100 - 1e-9


def test_value_axes_follow_the_data_not_a_wide_interval():
    fig = Figure()
    ax = fig.subplots()
    ax.set_yscale("log")
    summary = pd.DataFrame(
        {"mean": [1.0, 2.0], "ci_low": [1e-6, 1e-6], "ci_high": [1e8, 1e8], "n": [9, 9]}
    )
    summary["values"] = [(1.0,) * 9, (2.0,) * 9]
    line = selection.Line("x", "#000000", "-", pd.DataFrame())
    intervals.draw_mean_band(ax, [0, 1], summary, line, metric=metrics.METRICS["lambda_1"])
    intervals.fit_to_data(ax, metrics.METRICS["lambda_1"])
    low, high = ax.get_ylim()
    assert 0.5 < low < 1.0 and 2.0 < high < 4.0


def test_every_plotted_quantity_has_one_range_and_accuracies_are_percent():
    for name in ("final_test_acc", "final_train_acc", "best_val_acc", "accuracy"):
        assert metrics.METRICS[name].bounds == (0.0, 100.0)
    assert metrics.METRICS["correlation"].bounds == (-1.0, 1.0)
    assert metrics.METRICS["gap"].bounds == (-100.0, 100.0)
    assert all(m.low >= 0 for m in metrics.METRICS.values() if m.log)
    with pytest.raises(KeyError, match="known"):
        metrics.metric("nope")


def test_curves_value_axes_stay_within_the_possible_range(rendered):
    tables = synthetic_tables()
    fig = curves.study_figure(tables, "depth", curves.with_gap(tables.curves))
    for row in np.asarray(fig.axes[:3]).reshape(-1, 3):
        acc, loss, gap = row
        assert -6.1 <= acc.get_ylim()[0] and acc.get_ylim()[1] <= 106.1
        assert loss.get_ylim()[0] > 0
        assert -106.1 <= gap.get_ylim()[0] and gap.get_ylim()[1] <= 106.1


def test_cd_diagram_draws_no_diagram_where_the_test_is_undefined(tmp_path):
    cells = synthetic_cells()
    result = render_figure("cd_diagram", Tables(cells[cells["study"] == "zoo"]), tmp_path)
    assert result.skipped is None
    assert any("No diagram: 1 block" in text for text in result.texts)
    assert not any(text.startswith("CD =") for text in result.texts)
    assert any("no diagram" in note for note in result.notes)


def test_cd_diagram_draws_a_diagram_with_several_blocks_and_levels(tmp_path):
    norms = ["batch", "layer", "none"]
    cells = pd.DataFrame(
        grid(
            "ranked",
            {"norm": norms, "lr": [0.1, 0.2, 0.3, 0.4], "seed": [0, 1]},
            lambda p: 0.9 - 0.1 * norms.index(p["norm"]) + 0.01 * p["seed"],
        )
    )
    result = render_figure("cd_diagram", Tables(cells), tmp_path)
    assert any(text.startswith("CD =") for text in result.texts)
    assert not any("No diagram" in text for text in result.texts)


def srgb_to_lab(color: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB hex colour."""
    rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    x, y, z = xyz @ np.array(lin) / np.array([0.95047, 1.0, 1.08883])

    def f(t):
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def ciede2000(lab1, lab2) -> float:
    """Colour difference CIEDE2000 (Sharma, Wu & Dalal 2005, equations 1-22)."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    mean_c = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(mean_c**7 / (mean_c**7 + 25**7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = math.hypot(a1, b1), math.hypot(a2, b2)
    h1, h2 = math.degrees(math.atan2(b1, a1)) % 360, math.degrees(math.atan2(b2, a2)) % 360
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    big_dh = 2 * math.sqrt(c1 * c2) * math.sin(math.radians(dh / 2))
    mean_l, mean_cp = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        mean_h = h1 + h2
    elif abs(h1 - h2) <= 180:
        mean_h = (h1 + h2) / 2
    else:
        mean_h = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (
        1
        - 0.17 * math.cos(math.radians(mean_h - 30))
        + 0.24 * math.cos(math.radians(2 * mean_h))
        + 0.32 * math.cos(math.radians(3 * mean_h + 6))
        - 0.20 * math.cos(math.radians(4 * mean_h - 63))
    )
    theta = 30 * math.exp(-(((mean_h - 275) / 25) ** 2))
    rc = 2 * math.sqrt(mean_cp**7 / (mean_cp**7 + 25**7))
    sl = 1 + 0.015 * (mean_l - 50) ** 2 / math.sqrt(20 + (mean_l - 50) ** 2)
    sc, sh = 1 + 0.045 * mean_cp, 1 + 0.015 * mean_cp * t
    rt = -math.sin(math.radians(2 * theta)) * rc
    dl, dc, dhh = (l2 - l1) / sl, (c2 - c1) / sc, big_dh / sh
    return math.sqrt(dl**2 + dc**2 + dhh**2 + rt * dc * dhh)


def test_ciede2000_matches_sharmas_reference_pairs():
    assert ciede2000((50, 2.6772, -79.7751), (50, 0, -82.7485)) == pytest.approx(2.0425, abs=1e-4)
    assert ciede2000((50, -1.3802, -84.2814), (50, 0, -82.7485)) == pytest.approx(1.0, abs=1e-4)
    assert ciede2000((50, 2.5, 0), (73, 25, -18)) == pytest.approx(27.1492, abs=1e-4)


def test_every_normalizer_has_its_own_clearly_distinct_colour():
    colors = style.NORM_COLORS
    assert set(colors) >= set(style.NORM_ORDER) and len(set(colors.values())) == len(colors) >= 12
    labs = {norm: srgb_to_lab(color) for norm, color in colors.items()}
    close = [
        (a, b, round(ciede2000(labs[a], labs[b]), 1))
        for a, b in itertools.combinations(colors, 2)
        if ciede2000(labs[a], labs[b]) < 15
    ]
    assert not close, f"normalizer colours too alike (CIEDE2000 < 15): {close}"
    assert all(lab[0] < 80 for lab in labs.values()), "no colour so light it vanishes on white"


def test_a_frozen_spike_is_cut_even_when_the_initial_spike_matches_it():
    assert gamma_beta.spike_cut([1.0, 0.98, 0.2, 0.15]) == pytest.approx(0.23)
    assert gamma_beta.spike_cut([0.3, 0.25, 0.2]) is None


def test_what_all_panel_titles_share_is_said_once():
    fig = Figure()
    axes = fig.subplots(1, 2)
    style.set_panel_titles(
        fig, axes, ["zoo: digits, resnet14, lr=0.1", "zoo: digits, resnet14, lr=1"]
    )
    assert [ax.get_title(loc="left") for ax in axes] == ["lr=0.1", "lr=1"]
    assert fig.get_suptitle() == "zoo: digits, resnet14"


def test_ols_colours_mean_kappa_in_every_panel():
    """Residuals and trajectories alike: colour is the condition number, never the method."""
    frame = synthetic_ols()
    fig, _ = ols.ols_figure(frame, 0.5)
    colors = ols.kappa_colors(sorted(float(k) for k in frame["kappa"].unique()))
    used = {
        matplotlib.colors.to_hex(line.get_color()) for ax in fig.axes for line in ax.get_lines()
    }
    assert used == {matplotlib.colors.to_hex(c) for c in colors.values()}


def test_trajectories_average_the_layers_a_quantity_counts():
    """ICS of layer 0 is 0 by definition (no earlier layer): left out of the mean; a
    whole-model record is taken as it is."""
    from normstudy.figures.ics import QUANTITIES
    from normstudy.figures.trajectories import Quantity, per_cell

    rows = [
        {
            "cell_id": "a",
            "time": 1.0,
            "layer": f"l{i}",
            "layer_index": i,
            "key": "ics_l2",
            "value": v,
        }
        for i, v in enumerate([0.0, 2.0, 4.0])
    ]
    rows.append(
        {
            "cell_id": "b",
            "time": 1.0,
            "layer": "model",
            "layer_index": -1,
            "key": "loss_range",
            "value": 5.0,
        }
    )
    frame = pd.DataFrame(rows)
    ics = per_cell(frame, QUANTITIES[0])
    assert ics[["cell_id", "value"]].values.tolist() == [["a", 3.0]]
    every = per_cell(frame, Quantity("ics_l2", "ics_l2", "all layers"))
    assert every["value"].tolist() == [2.0]
    model = per_cell(frame, Quantity("loss_range", "loss_range", "loss"))
    assert model[["cell_id", "value"]].values.tolist() == [["b", 5.0]]


def test_the_early_hessian_spectrum_is_each_cells_first_record_after_init():
    """ "Is Batch Norm unique?" figure 4: the spectrum 50 steps in; a cell probed only at
    init and at the end has no early spectrum."""
    from normstudy.figures.hessian import early_records

    frame = pd.DataFrame(
        {"cell_id": ["a"] * 4 + ["b"] * 2, "step": [0, 50, 50, 900, 0, 900], "value": range(6)}
    )
    early = early_records(frame)
    assert early["cell_id"].tolist() == ["a", "a"] and set(early["step"]) == {50}
