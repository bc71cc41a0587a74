"""Trend tests (normstudy.trends) against hand OLS, scipy's Page test and Kendall's tau,
with planning-time validation and the nominal coverage of the slope interval."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from normstudy.comparison_specs import ComparisonSpecError, TrendSpec, parse_trends
from normstudy.grid import StudyError, check_comparisons
from normstudy.trends import slope_numbers, trend, trends_arrow, trends_table

AXES = ["freeze", "depth", "seed"]


def make_cells(values: dict, statuses=None) -> pd.DataFrame:
    """Cells from {(freeze, depth): [acc per seed]}."""
    statuses = statuses or {}
    rows = []
    for (freeze, depth), accs in values.items():
        for seed, acc in enumerate(accs):
            status = statuses.get((freeze, depth, seed), "ok")
            rows.append(
                {"study": "s", "freeze": freeze, "depth": depth, "seed": seed}
                | {"status": status, "num_classes": 10}
                | {"final_test_acc": acc if status == "ok" else math.nan}
                | {"final_test_loss": 1 - acc}
            )
    return pd.DataFrame(rows)


def hand_ols(x, y, confidence=0.95):
    x, y = np.asarray(x, float), np.asarray(y, float)
    sxx = ((x - x.mean()) ** 2).sum()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / sxx
    residuals = y - (y.mean() + slope * (x - x.mean()))
    se = math.sqrt((residuals**2).sum() / (x.size - 2) / sxx)
    half = sps.t.ppf(0.5 + confidence / 2, x.size - 2) * se
    return slope, slope - half, slope + half, 2 * sps.t.sf(abs(slope / se), x.size - 2), se


def test_slope_on_three_points_matches_hand_ols():
    cells = make_cells({("bn", 2): [0.50], ("bn", 4): [0.58], ("bn", 8): [0.62]})
    row = trend(cells, TrendSpec("depth"), AXES, study="s").iloc[0]
    slope, low, high, p, _ = hand_ols([1, 2, 3], [0.50, 0.58, 0.62])
    assert row["slope"] == pytest.approx(slope) == pytest.approx(0.06)
    assert (row["slope_low"], row["slope_high"]) == pytest.approx((low, high))
    assert row["p_value"] == pytest.approx(p)
    assert row["condition"] == '{"freeze":"bn"}' and row["n"] == 3
    assert row["test_rank"] == "kendall"  # one seed: no blocks for Page's test


def test_linear_scale_and_replicated_seeds():
    values = {("bn", 2): [0.5, 0.52], ("bn", 4): [0.55, 0.56], ("bn", 8): [0.6, 0.63]}
    row = trend(make_cells(values), TrendSpec("depth", scale="linear"), AXES, study="s").iloc[0]
    x = [2, 2, 4, 4, 8, 8]
    y = [0.5, 0.52, 0.55, 0.56, 0.6, 0.63]
    slope, low, high, p, se = hand_ols(x, y)
    assert (row["slope"], row["slope_low"], row["slope_high"]) == pytest.approx((slope, low, high))
    assert row["p_improves"] == pytest.approx(sps.t.sf(slope / se, 4))
    # every seed at every level: Page's L with seeds as blocks, levels in increasing order
    page = sps.page_trend_test([[0.5, 0.55, 0.6], [0.52, 0.56, 0.63]])
    assert row["test_rank"] == "page"
    assert (row["statistic_rank"], row["p_rank"]) == pytest.approx((page.statistic, page.pvalue))


def test_loss_improves_when_it_falls():
    values = {
        ("bn", d): [0.5 + 0.1 * i + 0.01 * s for s in range(3)] for i, d in enumerate([2, 4, 8])
    }
    cells = make_cells(values)
    spec = TrendSpec("depth", metric="final_test_loss", diverged="worst")
    row = trend(cells, spec, AXES, study="s").iloc[0]
    assert row["slope"] < 0 and row["direction"] == "lower"
    assert row["p_improves"] < 0.01 and row["p_rank"] < 0.05


def test_diverged_cells_enter_by_policy_and_missing_levels_fall_back_to_kendall():
    values = {("bn", 2): [0.5, 0.52], ("bn", 4): [0.55, 0.56], ("bn", 8): [0.6, 0.63]}
    cells = make_cells(values, statuses={("bn", 8, 1): "diverged"})
    chance = trend(cells, TrendSpec("depth", scale="linear"), AXES, study="s").iloc[0]
    x = [2, 2, 4, 4, 8, 8]
    assert chance["slope"] == pytest.approx(hand_ols(x, [0.5, 0.52, 0.55, 0.56, 0.6, 0.1])[0])
    assert chance["n_diverged"] == 1 and "policy 'chance'" in chance["note"]
    spec = TrendSpec("depth", scale="linear", diverged="exclude")
    excluded = trend(cells, spec, AXES, study="s").iloc[0]
    assert excluded["n"] == 5 and excluded["test_rank"] == "kendall"
    tau = sps.kendalltau(x[:5], [0.5, 0.52, 0.55, 0.56, 0.6], alternative="greater")
    assert excluded["p_rank"] == pytest.approx(tau.pvalue)


def test_holm_within_the_family_across_conditions_and_arrow():
    values = {
        (freeze, d): [0.5 + k * 0.02 * i + 0.01 * s for s in range(3)]
        for k, freeze in enumerate(["all", "bn"])
        for i, d in enumerate([2, 4, 8])
    }
    table = trends_table(make_cells(values), {"s": (AXES, [TrendSpec("depth")])})
    assert len(table) == 2
    p = np.sort(table["p_value"].to_numpy())
    expected = np.maximum.accumulate(np.minimum(1, [2 * p[0], p[1]]))
    assert np.sort(table["p_holm"].to_numpy()) == pytest.approx(expected)
    assert json.loads(table["condition"].iloc[0]) == {"freeze": "all"}
    assert trends_arrow(table).num_rows == 2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"trend": "freeze"}, "needs two or more finite numeric values; values: all, bn"),
        ({"trend": "depth", "scale": "sqrt"}, "unknown scale 'sqrt'; valid scales: log, linear"),
        ({"trend": "width"}, "not an axis of the study"),
        ({"trend": "seed"}, "seed axis"),
        ({"trend": "depth", "reference": 2}, "unknown trend key(s) 'reference'"),
        ({"trend": "depth", "metric": "final_test_loss"}, "'worst'"),
        ({"trend": "lr"}, "scale 'log' needs positive values"),
    ],
)
def test_bad_trends_fail_clearly(entry, message):
    grid = {"freeze": ["all", "bn"], "depth": [2, 4, 8], "lr": [0, 0.1], "seed": [0, 1]}
    with pytest.raises(ComparisonSpecError) as error:
        parse_trends([entry], grid)
    assert message in str(error.value)
    with pytest.raises(StudyError, match="study 'depth_study': comparisons: "):
        check_comparisons("depth_study", [entry], grid)


def test_slope_interval_coverage_by_simulation():
    """The 95% t interval of the slope holds its nominal coverage with normal seeds
    (3 depths, 2 seeds each: 4 degrees of freedom)."""
    rng = np.random.default_rng(11)
    x = np.repeat(np.log2([2.0, 4.0, 8.0]), 2)
    hits = 0
    replications = 2000
    for _ in range(replications):
        numbers = slope_numbers(x, 0.5 + 0.03 * x + rng.normal(0, 0.02, x.size), "higher", 0.95)
        hits += numbers["slope_low"] <= 0.03 <= numbers["slope_high"]
    assert abs(hits / replications - 0.95) < 3 * math.sqrt(0.95 * 0.05 / replications)
