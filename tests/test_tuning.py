"""Tuned comparisons (normstudy.tuning via normstudy.comparisons): each level at its own best
values of the tuned axes, chosen on a validation metric, compared on the test metric."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from normstudy import comparison_specs, comparisons
from normstudy.comparison_specs import ComparisonSpec, ComparisonSpecError
from normstudy.grid import StudyError, check_comparisons

AXES = ["norm", "lr", "seed"]
# (norm, lr) -> (val per seed, test per seed); batch is best at lr 1, layer at lr 0.1
ZOO = {
    ("batch", 0.1): ([0.70, 0.72, 0.71], [0.69, 0.70, 0.72]),
    ("batch", 1.0): ([0.80, 0.81, 0.79], [0.78, 0.80, 0.79]),
    ("layer", 0.1): ([0.75, 0.77, 0.76], [0.74, 0.75, 0.78]),
    ("layer", 1.0): ([0.60, 0.62, 0.61], [0.60, 0.63, 0.59]),
}


def make_cells(zoo=ZOO, statuses=None) -> pd.DataFrame:
    statuses = statuses or {}
    rows = []
    for (norm, lr), (val, test) in zoo.items():
        for seed, (v, t) in enumerate(zip(val, test, strict=True)):
            status = statuses.get((norm, lr, seed), "ok")
            ok = status == "ok"
            rows.append(
                {"study": "s", "norm": norm, "lr": lr, "seed": seed, "status": status}
                | {"num_classes": 10, "final_val_acc": v if ok else math.nan}
                | {"final_test_acc": t if ok else math.nan, "final_val_loss": 1 - v}
            )
    return pd.DataFrame(rows)


def test_each_level_is_compared_at_its_own_best_value():
    spec = ComparisonSpec("norm", "batch", tune=("lr",))
    rows = comparisons.compare(make_cells(), spec, AXES, study="s")
    row = rows.iloc[0]
    assert len(rows) == 1 and row["condition"] == "{}"
    assert json.loads(row["reference_tuned"]) == {"lr": 1}
    assert json.loads(row["candidate_tuned"]) == {"lr": 0.1}
    assert json.loads(row["tuned_axes"]) == ["lr"] and row["tune_metric"] == "final_val_acc"
    assert row["family"] == "s/norm=batch/final_test_acc/tuned:lr"
    x, y = np.array(ZOO[("layer", 0.1)][1]), np.array(ZOO[("batch", 1.0)][1])
    assert row["paired"] and row["diff"] == pytest.approx(x.mean() - y.mean())
    assert row["p_value"] == pytest.approx(sps.ttest_rel(x, y).pvalue)
    comparisons.comparisons_arrow(rows)


def test_tuning_table_marks_the_chosen_values():
    spec = ComparisonSpec("norm", "batch", tune=("lr",))
    table = comparisons.tuning_table(make_cells(), {"s": (AXES, [spec])})
    assert len(table) == 4
    chosen = table[table["chosen"]]
    assert sorted(zip(chosen["level"], chosen["tuned_values"], strict=True)) == [
        ("batch", '{"lr":1}'),
        ("layer", '{"lr":0.1}'),
    ]
    batch_low = table[(table["level"] == "batch") & (table["tuned_values"] == '{"lr":0.1}')]
    assert batch_low["mean_tune"].iloc[0] == pytest.approx(np.mean([0.70, 0.72, 0.71]))


def test_lower_is_better_tune_metric_and_ties_go_to_the_first_value():
    zoo = {key: (val, test) for key, (val, test) in ZOO.items()}
    spec = ComparisonSpec(
        "norm", "batch", tune=("lr",), tune_metric="final_val_loss", diverged="worst"
    )
    row = comparisons.compare(make_cells(zoo), spec, AXES, study="s").iloc[0]
    assert json.loads(row["reference_tuned"]) == {"lr": 1}  # lowest loss = best val acc
    tied = dict(ZOO) | {("layer", 1.0): (ZOO[("layer", 0.1)][0], [0.1, 0.1, 0.1])}
    spec = ComparisonSpec("norm", "batch", tune=("lr",))
    row = comparisons.compare(make_cells(tied), spec, AXES, study="s").iloc[0]
    assert json.loads(row["candidate_tuned"]) == {"lr": 0.1}


def test_diverged_cells_count_against_a_tuned_value():
    # one of batch's seeds diverges at lr 1: at chance (0.1) its mean falls below lr 0.1
    cells = make_cells(statuses={("batch", 1.0, 0): "diverged"})
    spec = ComparisonSpec("norm", "batch", tune=("lr",))
    row = comparisons.compare(cells, spec, AXES, study="s").iloc[0]
    assert json.loads(row["reference_tuned"]) == {"lr": 0.1}
    excluded = ComparisonSpec("norm", "batch", tune=("lr",), diverged="exclude")
    row = comparisons.compare(cells, excluded, AXES, study="s").iloc[0]
    assert json.loads(row["reference_tuned"]) == {"lr": 1}
    assert row["n_ref"] == 2 and not row["paired"]


def test_excluded_grid_points_leave_a_level_fewer_values():
    # reg_strength varies only for regnorm: batch has one value, regnorm three
    rows = []
    for norm, strengths in (("batch", [0.0]), ("regnorm", [0.0, 0.1, 1.0])):
        for strength in strengths:
            for seed in range(3):
                val = 0.7 + (0.05 if strength == 0.1 else 0.0) + 0.01 * seed
                rows.append(
                    {"study": "s", "norm": norm, "reg_strength": strength, "seed": seed}
                    | {"status": "ok", "num_classes": 10, "final_val_acc": val}
                    | {"final_test_acc": val - 0.01}
                )
    cells = pd.DataFrame(rows)
    axes = ["norm", "reg_strength", "seed"]
    spec = ComparisonSpec("norm", "batch", tune=("reg_strength",))
    row = comparisons.compare(cells, spec, axes, study="s").iloc[0]
    assert json.loads(row["reference_tuned"]) == {"reg_strength": 0}
    assert json.loads(row["candidate_tuned"]) == {"reg_strength": 0.1}
    assert row["diff"] == pytest.approx(0.05)
    table = comparisons.tuning_table(cells, {"s": (axes, [spec])})
    assert table.groupby("level").size().to_dict() == {"batch": 1, "regnorm": 3}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"tune": ["lr"], "tune_metric": "final_test_acc"}, "reads the test set"),
        ({"tune": ["lr"], "tune_metric": "final_test_loss"}, "reads the test set"),
        ({"tune": "lr"}, "tune must be a list of grid axes"),
        ({"tune": ["lr"], "metric": "final_val_acc"}, "is the compared metric"),
        ({"tune": ["seed"]}, "cannot tune 'seed'; axes that can be tuned: lr"),
        ({"tune": ["norm"]}, "cannot tune 'norm'"),
        ({"tune": ["depth"]}, "cannot tune 'depth'"),
        ({"tune": []}, "tune must list distinct grid axes"),
        ({"tune": ["lr"], "tune_metric": "val"}, "valid metrics"),
        ({"tune_metric": "final_val_acc"}, "needs tune"),
    ],
)
def test_bad_tuning_fails_clearly(entry, message):
    with pytest.raises(ComparisonSpecError, match="comparison of 'norm'|unknown metric") as err:
        comparison_specs.parse_comparisons([{"factor": "norm", "reference": "batch"} | entry], AXES)
    assert message in str(err.value)


def test_a_tune_metric_without_values_fails_clearly():
    cells = make_cells().assign(final_val_acc=math.nan)
    spec = ComparisonSpec("norm", "batch", tune=("lr",))
    with pytest.raises(ValueError, match="no finite value in any ok cell"):
        comparisons.compare(cells, spec, AXES, study="s")


def test_the_planning_check_names_the_study():
    grid = {"norm": ["batch", "layer"], "lr": [0.1, 1.0], "seed": [0, 1]}
    bad = [{"factor": "norm", "reference": "batch", "tune": ["lr"], "metric": "final_val_acc"}]
    with pytest.raises(StudyError, match="study 'zoo': comparisons: comparison of 'norm'"):
        check_comparisons("zoo", bad, grid)
