"""TOST equivalence tests (normstudy.equivalence) against hand t computations, their
verdicts in comparisons, and their size and power by simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from normstudy import comparison_specs, comparisons, multiplicity
from normstudy.comparison_specs import ComparisonSpec, ComparisonSpecError
from normstudy.equivalence import (
    DIFFERENT,
    DIFFERENT_SIZE_UNCLEAR,
    EQUIVALENT,
    NO_VERDICT,
    NOT_SHOWN,
    tost,
    tost_p,
    verdict,
)

X = np.array([0.801, 0.812, 0.795, 0.808, 0.803])
Y = np.array([0.800, 0.806, 0.799, 0.802, 0.805])


def test_paired_tost_matches_a_hand_t_computation():
    margin = 0.01
    d = X - Y
    n, se = d.size, d.std(ddof=1) / math.sqrt(d.size)
    p_lower = sps.t.sf((d.mean() + margin) / se, n - 1)
    p_upper = sps.t.cdf((d.mean() - margin) / se, n - 1)
    half = sps.t.ppf(0.95, n - 1) * se
    numbers = tost(X, Y, margin, paired=True)
    assert numbers["tost_p"] == pytest.approx(max(p_lower, p_upper))
    assert (numbers["eq_low"], numbers["eq_high"]) == pytest.approx(
        (d.mean() - half, d.mean() + half)
    )
    # TOST rejects at 0.05 exactly when the 90% interval lies within the margin
    inside = -margin < numbers["eq_low"] and numbers["eq_high"] < margin
    assert (numbers["tost_p"] < 0.05) == inside


def test_welch_tost_matches_a_hand_t_computation():
    margin = 0.004
    v1, v2 = X.var(ddof=1) / X.size, Y.var(ddof=1) / Y.size
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (X.size - 1) + v2**2 / (Y.size - 1))
    diff = X.mean() - Y.mean()
    expected = max(sps.t.sf((diff + margin) / se, df), sps.t.cdf((diff - margin) / se, df))
    numbers = tost(X, Y, margin, paired=False)
    assert numbers["tost_p"] == pytest.approx(expected)
    half = sps.t.ppf(0.95, df) * se
    assert (numbers["eq_low"], numbers["eq_high"]) == pytest.approx((diff - half, diff + half))


def test_no_tost_below_two_seeds_or_at_zero_variance():
    assert math.isnan(tost(X[:1], Y[:1], 0.01, paired=True)["tost_p"])
    assert math.isnan(tost(Y + 0.001, Y, 0.01, paired=True)["tost_p"])


@pytest.mark.parametrize(
    ("tost_p_value", "p_value", "low", "high", "expected"),
    [
        (0.01, 0.60, -0.004, 0.005, EQUIVALENT),
        (0.01, 0.01, 0.001, 0.005, EQUIVALENT),  # a real difference smaller than the margin
        (0.90, 0.001, 0.02, 0.04, DIFFERENT),
        (0.40, 0.01, 0.002, 0.03, DIFFERENT_SIZE_UNCLEAR),
        (0.40, 0.70, -0.03, 0.02, NOT_SHOWN),  # not significant is not equivalent
        (math.nan, math.nan, math.nan, math.nan, NO_VERDICT),
    ],
)
def test_verdicts(tost_p_value, p_value, low, high, expected):
    assert verdict(tost_p_value, p_value, low, high, 0.01) == expected


def cells_of(reference, candidate) -> pd.DataFrame:
    rows = [
        {"study": "s", "norm": norm, "seed": seed, "status": "ok", "num_classes": 10}
        | {"final_test_acc": value}
        for norm, values in (("batch", reference), ("noisy", candidate))
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_comparison_rows_carry_the_equivalence_columns():
    cells = cells_of(Y, X)
    spec = ComparisonSpec("norm", "batch", equivalence_margin=0.01)
    row = comparisons.compare(cells, spec, ["norm", "seed"], study="s").iloc[0]
    assert row["equivalence_margin"] == 0.01
    assert row["tost_p"] == pytest.approx(tost(X, Y, 0.01, paired=True)["tost_p"])
    assert row["equivalence"] == EQUIVALENT
    # the ordinary columns keep their meaning
    assert row["p_value"] == pytest.approx(sps.ttest_rel(X, Y).pvalue)
    plain = comparisons.compare(cells, ComparisonSpec("norm", "batch"), ["norm", "seed"], study="s")
    assert plain.iloc[0]["equivalence"] is None and math.isnan(plain.iloc[0]["tost_p"])
    comparisons.comparisons_arrow(plain)


def test_noisy_seeds_are_not_shown_equivalent():
    rng = np.random.default_rng(3)
    noisy = Y + rng.normal(0, 0.05, Y.size)
    spec = ComparisonSpec("norm", "batch", equivalence_margin=0.01)
    row = comparisons.compare(cells_of(Y, noisy), spec, ["norm", "seed"], study="s").iloc[0]
    assert row["p_value"] > 0.05 and row["equivalence"] == NOT_SHOWN


@pytest.mark.parametrize("value", [0, -0.01, "0.01", True, math.inf])
def test_bad_margins_fail_clearly(value):
    entry = {"factor": "norm", "reference": "batch", "equivalence_margin": value}
    with pytest.raises(ComparisonSpecError, match="equivalence_margin must be a positive"):
        comparison_specs.parse_comparisons([entry], ["norm", "seed"])


# ----------------------------------------------------------------------- simulation

REPLICATIONS = 20_000  # Monte Carlo SE of a 5% rate: 0.0015


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("n", [3, 5, 10])
def test_tost_size_at_the_margin_is_at_most_alpha(paired, n):
    """True difference exactly at the margin: TOST must reject (claim equivalence) in at
    most 5% of replications (it is exactly 5% for a paired t at the boundary)."""
    rng = np.random.default_rng(n + 100 * paired)
    margin, sd = 0.01, 0.01
    reference = rng.normal(0.8, sd, (REPLICATIONS, n))
    candidate = rng.normal(0.8 + margin, sd, (REPLICATIONS, n))
    rate = float(np.mean(tost_p(candidate, reference, margin, paired=paired) < 0.05))
    assert rate <= 0.05 + 3 * 0.0015, rate


def test_tost_power_with_no_difference_and_small_sd():
    rng = np.random.default_rng(7)
    reference = rng.normal(0.8, 0.002, (REPLICATIONS, 5))
    candidate = rng.normal(0.8, 0.002, (REPLICATIONS, 5))
    rate = float(np.mean(tost_p(candidate, reference, 0.01, paired=True) < 0.05))
    assert rate > 0.99, rate


def test_tost_p_is_holm_adjusted_within_the_family():
    rows = [
        {"study": "s", "norm": norm, "width": width, "seed": seed, "status": "ok"}
        | {"num_classes": 10, "final_test_acc": value + 0.001 * width}
        for width in (1, 2)
        for norm, values in (("batch", Y), ("noisy", X))
        for seed, value in enumerate(values)
    ]
    spec = ComparisonSpec("norm", "batch", equivalence_margin=0.01)
    table = comparisons.comparisons_table(
        pd.DataFrame(rows), {"s": (["norm", "width", "seed"], [spec])}
    )
    assert table["p_holm_tost"].to_numpy() == pytest.approx(multiplicity.holm(table["tost_p"]))
    comparisons.comparisons_arrow(table)
