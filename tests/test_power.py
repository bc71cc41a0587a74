"""normstudy.power and normstudy.power_report: power against textbook values and a
simulation, the report, the seed suggestion, and the smallest_effect key of config.yaml."""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from normstudy import comparison_specs, comparisons, intervals, power, power_report
from normstudy.comparison_specs import ComparisonSpec, ComparisonSpecError
from normstudy.grid import StudyError, plan_studies

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


# ----------------------------------------------------------------------------- power


@pytest.mark.parametrize(
    ("effect", "paired", "n"),
    [
        # Cohen (1988), Table 2.4.1: two-sided alpha 0.05, power 0.80
        (0.5, False, 64),
        (0.8, False, 26),
        (1.0, False, 17),
        # one-sample / paired t on d_z (G*Power's values; Cohen's table 2.4.1 with his
        # n' = 2n - 1 rule gives 33 for 0.5)
        (0.5, True, 34),
        (1.0, True, 10),
    ],
)
def test_seeds_needed_match_cohens_tables(effect, paired, n):
    assert power.seeds_needed(effect, paired=paired) == n
    assert power.seeds_needed(-effect, paired=paired) == n
    assert power.t_power(n, effect, paired=paired) >= 0.8
    assert power.t_power(n - 1, effect, paired=paired) < 0.8


def test_t_power_matches_a_simulated_rejection_rate():
    rng = np.random.default_rng(0)
    for paired, n, effect in ((True, 5, 1.5), (False, 4, 2.0), (True, 2, 6.0)):
        x = rng.normal(effect, 1.0, (40_000, n))
        if paired:
            p = sps.ttest_1samp(x, 0.0, axis=1).pvalue
        else:
            p = sps.ttest_ind(x, rng.normal(0.0, 1.0, (40_000, n)), axis=1).pvalue
        assert np.mean(p < 0.05) == pytest.approx(power.t_power(n, effect, paired=paired), abs=0.01)


def test_seeds_needed_gives_none_where_seeds_cannot_help():
    assert power.seeds_needed(0.0, paired=True) is None
    assert power.seeds_needed(math.nan, paired=True) is None
    assert power.seeds_needed(0.05, paired=False) is None  # about 6,300 a side
    assert power.seeds_needed(0.05, paired=False, max_seeds=10_000) == 6281
    assert power.seeds_needed(50.0, paired=True) == 2


def test_power_numbers_use_d_z_when_paired_and_pooled_sd_when_not():
    x, y = np.array([0.84, 0.83, 0.86, 0.88, 0.80]), np.array([0.80, 0.82, 0.79, 0.85, 0.81])
    row, notes = power.power_numbers(x, y, paired=True, smallest_effect=0.01)
    d = x - y
    assert row["effect_power"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert row["power_now"] == pytest.approx(power.t_power(5, row["effect_power"], paired=True))
    assert row["n_needed"] == power.seeds_needed(row["effect_power"], paired=True)
    assert row["n_needed_smallest"] == power.seeds_needed(0.01 / d.std(ddof=1), paired=True)
    assert row["smallest_effect"] == 0.01 and notes == []
    row, _ = power.power_numbers(x, y, paired=False, smallest_effect=None)
    pooled = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
    assert row["effect_power"] == pytest.approx((x.mean() - y.mean()) / pooled)
    assert row["n_needed_smallest"] is None and math.isnan(row["smallest_effect"])
    row, _ = power.power_numbers(x[:1], y, paired=False, smallest_effect=0.01)
    assert row["n_needed"] is None and math.isnan(row["power_now"])


# ------------------------------------------------------------------- comparisons table


def cells_of(ref, cand, seeds=None):
    rows = []
    for norm, values in (("batch", ref), ("layer", cand)):
        for i, value in enumerate(values):
            seed = i if seeds is None else seeds[norm][i]
            rows.append(
                {
                    "study": "s",
                    "norm": norm,
                    "seed": seed,
                    "status": "ok",
                    "num_classes": 10,
                    "final_test_acc": value,
                }
            )
    return pd.DataFrame(rows)


def test_comparisons_carry_interval_method_g_interval_and_power(tmp_path):
    ref, cand = [0.80, 0.82, 0.79, 0.85, 0.81], [0.84, 0.83, 0.86, 0.88, 0.80]
    spec = ComparisonSpec("norm", "batch", smallest_effect=0.02)
    table = comparisons.comparisons_table(cells_of(ref, cand), {"s": (["norm", "seed"], [spec])})
    row = table.iloc[0]
    assert row["ci_method"] == "paired_t"
    assert (row["g_low"], row["g_high"]) == pytest.approx(
        intervals.hedges_g_interval(np.array(cand), np.array(ref))
    )
    assert row["g_low"] < row["hedges_g"] < row["g_high"]
    assert row["smallest_effect"] == 0.02
    d = np.array(cand) - np.array(ref)
    assert row["n_needed_smallest"] == power.seeds_needed(0.02 / d.std(ddof=1), paired=True)
    arrow = comparisons.comparisons_arrow(table)
    assert arrow.schema.field("n_needed").type == "int32"
    single = comparisons.comparisons_table(
        cells_of([0.8], [0.9, 0.91]), {"s": (["norm", "seed"], [spec])}
    )
    arrow = comparisons.comparisons_arrow(single)
    assert arrow.column("n_needed").to_pylist() == [None]
    assert arrow.column("ci_method").to_pylist() == ["none"]
    assert math.isnan(single.iloc[0]["ci_low"])
    assert "no interval" in single.iloc[0]["note"]


# ---------------------------------------------------------------------------- report


def comparison_rows(entries):
    """Comparison rows with just the columns power_rows reads."""
    rows = []
    for study, n_ref, n_cand, n_needed, smallest, n_smallest in entries:
        rows.append(
            {
                "study": study,
                "family": f"{study}/norm=batch/final_test_acc",
                "candidate": "layer",
                "condition": "{}",
                "paired": True,
                "n_ref": n_ref,
                "n_cand": n_cand,
                "n_needed": n_needed,
                "smallest_effect": smallest,
                "n_needed_smallest": n_smallest,
            }
        )
    return pd.DataFrame(rows)


REPORT_INPUT = comparison_rows(
    [
        ("a", 3, 3, 2, math.nan, None),  # observed effect: 3 seeds enough
        ("b", 3, 3, 4, 0.01, 6),  # smallest effect needs 6
        ("b", 3, 3, None, 0.01, 5),
        ("c", 1, 3, None, math.nan, None),  # nothing to judge
        ("d", 3, 3, 2, 0.001, 400),  # out of reach
        ("e", 2, 2, 4, math.nan, None),  # one within reach, one not
        ("e", 2, 2, 200, math.nan, None),
    ]
)


def test_power_rows_judge_on_the_smallest_effect_where_declared():
    rows = power_report.power_rows(REPORT_INPUT)
    assert list(rows["basis"]) == ["observed effect", *["smallest effect"] * 2] + [
        "observed effect",
        "smallest effect",
        *["observed effect"] * 2,
    ]
    assert rows["n_target"].astype(object).where(rows["n_target"].notna(), None).tolist() == [
        2,
        6,
        5,
        None,
        400,
        4,
        200,
    ]
    assert list(rows["adequate"]) == [True, False, False, None, False, False, False]
    summary = power_report.study_summary(rows).set_index("study")
    assert summary.loc["a", "powered"] and not summary.loc["b", "powered"]
    assert summary.loc["b", "n_needed_max"] == 6
    assert summary.loc["c", "judged"] == 0 and summary.loc["c", "powered"] is None


def test_power_markdown_lists_every_study_and_comparison():
    text = power_report.power_markdown(power_report.power_rows(REPORT_INPUT), "demo")
    assert text.startswith("# Power of the comparisons at demo scale")
    for study in "abcd":
        assert f"\n## {study}\n" in text
    assert "| b | 2 | 2 | 0 | 3 | 6 | smallest effect | no |" in text
    assert "| c | 1 | 0 | 0 | 1 | – | observed effect | – |" in text
    assert power_report.power_markdown(power_report.power_rows(REPORT_INPUT.iloc[:0])).endswith(
        "No comparisons.\n"
    )


def test_suggestion_extends_only_the_seed_lists_that_fall_short():
    studies = {
        "a": {"grid": {"seed": [0, 1, 2]}},
        "b": {"grid": {"seed": [0, 1, 2]}, "demo": {"grid": {"seed": [0, 5, 1]}}},
        "c": {"grid": {"seed": [0]}},
        "d": {"grid": {"seed": [0, 1, 2]}},
        "e": {"grid": {"seed": [0, 1]}},
    }
    rows = power_report.power_rows(REPORT_INPUT)
    lines = power_report.seed_suggestions(rows, studies, "demo", max_seeds=30)
    assert lines[0] == "# a: adequately powered with 3 seeds; unchanged"
    assert lines[1] == (
        "studies.b.demo.grid.seed: [0, 5, 1, 2, 3, 4]   # was [0, 5, 1]; n needed 6 "
        "(smallest effect)"
    )
    assert lines[2].startswith("# c: no comparison can be judged")
    assert lines[3].startswith("# d: 1 comparison(s) need more than --max-seeds 30, all it")
    assert lines[4] == (
        "studies.e.grid.seed: [0, 1, 2, 3]   # was [0, 1]; n needed 4 (observed effect); "
        "1 comparison(s) need more than --max-seeds 30"
    )
    paper = power_report.seed_suggestions(rows, studies, "paper")
    assert paper[1].startswith("studies.b.grid.seed: [0, 1, 2, 3, 4, 5]")
    assert power_report.extended_seeds([3, 0], 4) == [3, 0, 1, 2]


# ----------------------------------------------------------------- config validation


def workflow_config(comparison: dict) -> dict:
    return {
        "scale": "demo",
        "data_dir": "data",
        "download": False,
        "resources": {
            "threads": 1,
            "gpu": 0,
            "mem_mb": 1000,
            "mem_mb_per_mparam": 100,
            "runtime": 5,
            "minutes_per_gstep": 1.0,
        },
        "ols": {"d": [2], "kappa": [10], "lr": [0.1], "steps": 5},
        "defaults": {"epochs": 1, "model": "mlp", "width": 16},
        "studies": {
            "toy": {
                "grid": {"norm": ["batch", "layer"], "seed": [0, 1]},
                "comparisons": [comparison],
            }
        },
    }


def test_smallest_effect_is_read_from_the_config():
    config = workflow_config({"factor": "norm", "reference": "batch", "smallest_effect": 0.01})
    jsonschema.validate(config, SCHEMA)
    plan = plan_studies(config)
    (spec,) = comparison_specs.parse_comparisons(plan.studies["toy"].comparisons, ["norm", "seed"])
    assert spec.smallest_effect == 0.01


@pytest.mark.parametrize("value", [0, -0.01, "1 point", True, math.inf])
def test_bad_smallest_effect_names_study_key_and_value(value):
    config = workflow_config({"factor": "norm", "reference": "batch", "smallest_effect": value})
    with pytest.raises(StudyError) as error:
        plan_studies(config)
    message = str(error.value)
    assert "study 'toy'" in message and "smallest_effect" in message
    assert repr(value) in message
    if not isinstance(value, bool) and value != math.inf:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(config, SCHEMA)
    with pytest.raises(ComparisonSpecError):
        comparison_specs.parse_comparisons(
            config["studies"]["toy"]["comparisons"], ["norm", "seed"]
        )
