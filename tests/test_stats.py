"""normstudy.comparisons, pairwise and multiplicity against scipy called directly,
textbook values and hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps

from normstudy import comparison_specs, comparisons, intervals, multiplicity, ranking
from normstudy.comparison_specs import ComparisonSpec, ComparisonSpecError

AXES = ["dataset", "norm", "freeze", "seed"]


def make_cells(values: dict, *, study="s", num_classes=10, statuses=None) -> pd.DataFrame:
    """Cells from {(dataset, norm, freeze): [metric per seed]}; seed i is the i-th value,
    or the key's ``seeds`` entry when given as ((dataset, norm, freeze), seeds)."""
    rows = []
    statuses = statuses or {}
    for key, accs in values.items():
        cond, seeds = key if isinstance(key[0], tuple) else (key, range(len(accs)))
        dataset, norm, freeze = cond
        for seed, acc in zip(seeds, accs, strict=True):
            status = statuses.get((cond, seed), "ok")
            rows.append(
                {
                    "study": study,
                    "cell_id": f"{dataset}-{norm}-{freeze}-{seed}",
                    "dataset": dataset,
                    "norm": norm,
                    "freeze": freeze,
                    "seed": seed,
                    "status": status,
                    "num_classes": num_classes,
                    "final_test_acc": math.nan if status == "diverged" else acc,
                    "final_test_loss": math.nan if status == "diverged" else 1.0 - acc,
                }
            )
    return pd.DataFrame(rows)


def one_row(frame: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        mask &= (frame[column] == value).to_numpy()
    assert mask.sum() == 1, (where, mask.sum())
    return frame[mask].iloc[0]


REF = [0.80, 0.82, 0.79, 0.85, 0.81]
CAND = [0.84, 0.83, 0.86, 0.88, 0.80]


# ------------------------------------------------------------------------ Holm, Hedges


def test_holm_textbook_example():
    # sorted p: 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 0.04)
    adjusted = multiplicity.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_step_down_is_monotone_and_capped():
    adjusted = multiplicity.holm([0.01, 0.02, 0.03, 0.04, 0.05])
    np.testing.assert_allclose(adjusted, [0.05, 0.08, 0.09, 0.09, 0.09])
    np.testing.assert_allclose(multiplicity.holm([0.3, 0.6]), [0.6, 0.6])
    np.testing.assert_allclose(multiplicity.holm([0.5, 0.9, 0.7]), [1.0, 1.0, 1.0])


def test_holm_ignores_nan_in_the_count():
    adjusted = multiplicity.holm([0.01, math.nan, 0.04])
    np.testing.assert_allclose(adjusted, [0.02, math.nan, 0.04])
    assert np.isnan(multiplicity.holm([math.nan])).all()


def test_hedges_g_hand_computation():
    # means 4 and 2, both SDs 1 -> d = 2; J = 1 - 3 / (4 * 6 - 9) = 0.8
    assert intervals.hedges_g([3, 4, 5], [1, 2, 3]) == pytest.approx(1.6)
    # unequal n: pooled var = (3 * 20/3 + 2 * 1) / 5 = 4.4; J = 1 - 3/19
    expected = (1 - 3 / 19) * 3 / math.sqrt(4.4)
    assert intervals.hedges_g([2, 4, 6, 8], [1, 2, 3]) == pytest.approx(expected)
    assert intervals.hedges_g([1, 2, 3], [3, 4, 5]) == pytest.approx(-1.6)
    assert math.isnan(intervals.hedges_g([1.0], [1.0, 2.0]))
    assert math.isnan(intervals.hedges_g([1.0, 1.0], [2.0, 2.0]))


# -------------------------------------------------------------------------- comparisons


def test_paired_comparison_matches_scipy():
    cells = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): CAND})
    spec = ComparisonSpec("norm", "batch")
    rows = comparisons.compare(cells, spec, AXES, study="s")
    row = one_row(rows, candidate="layer")
    x, y = np.array(CAND), np.array(REF)
    assert row["paired"] and row["test"] == "ttest_rel" and row["test_rank"] == "wilcoxon"
    assert (row["n_ref"], row["n_cand"]) == (5, 5)
    assert row["mean_ref"] == pytest.approx(y.mean())
    assert row["sd_ref"] == pytest.approx(y.std(ddof=1))
    assert row["mean_cand"] == pytest.approx(x.mean())
    assert row["sd_cand"] == pytest.approx(x.std(ddof=1))
    assert row["diff"] == pytest.approx(x.mean() - y.mean())
    t = sps.ttest_rel(x, y)
    w = sps.wilcoxon(x, y)
    assert row["statistic"] == pytest.approx(t.statistic)
    assert row["p_value"] == pytest.approx(t.pvalue)
    assert row["statistic_rank"] == pytest.approx(w.statistic)
    assert row["p_value_rank"] == pytest.approx(w.pvalue)
    # the t interval of the mean paired difference by hand
    d = x - y
    half = sps.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row["ci_method"] == "paired_t"

    assert row["ci_low"] < row["diff"] < row["ci_high"]
    assert row["hedges_g"] == pytest.approx(intervals.hedges_g(x, y))
    assert row["p_holm"] == pytest.approx(t.pvalue)
    assert row["note"] == ""


def test_pairing_follows_seeds_not_row_order():
    shuffled = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): CAND})
    shuffled = shuffled.sample(frac=1.0)
    spec = ComparisonSpec("norm", "batch")
    row = comparisons.compare(shuffled, spec, AXES, study="s").iloc[0]
    assert row["statistic"] == pytest.approx(sps.ttest_rel(CAND, REF).statistic)


def test_unpaired_comparison_matches_scipy():
    cells = make_cells(
        {
            (("d", "batch", "all"), (0, 1, 2, 3, 4)): REF,
            (("d", "layer", "all"), (5, 6, 7, 8)): CAND[:4],
        }
    )
    spec = ComparisonSpec("norm", "batch")
    row = comparisons.compare(cells, spec, AXES, study="s").iloc[0]
    x, y = np.array(CAND[:4]), np.array(REF)
    assert not row["paired"] and row["test"] == "welch" and row["test_rank"] == "mannwhitneyu"
    assert "seeds differ" in row["note"]
    t = sps.ttest_ind(x, y, equal_var=False)
    u = sps.mannwhitneyu(x, y, alternative="two-sided")
    assert row["statistic"] == pytest.approx(t.statistic)
    assert row["p_value"] == pytest.approx(t.pvalue)
    assert row["statistic_rank"] == pytest.approx(u.statistic)
    assert row["p_value_rank"] == pytest.approx(u.pvalue)
    # Welch's interval by hand: diff ± t_{0.975, ν} sqrt(s1²/n1 + s2²/n2), Satterthwaite ν
    a, b = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    nu = (a + b) ** 2 / (a**2 / (x.size - 1) + b**2 / (y.size - 1))
    half = sps.t.ppf(0.975, nu) * math.sqrt(a + b)
    diff = x.mean() - y.mean()
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((diff - half, diff + half))
    assert row["ci_method"] == "welch_t"
    assert row["hedges_g"] == pytest.approx(intervals.hedges_g(x, y))


def test_comparisons_stay_within_conditions():
    offsets = {("digits", "all"): 0.0, ("digits", "norm"): 0.3, ("noise", "all"): 0.6}
    values = {}
    for (dataset, freeze), offset in offsets.items():
        values[(dataset, "batch", freeze)] = [offset + v for v in REF]
        values[(dataset, "layer", freeze)] = [offset + v for v in CAND]
        values[(dataset, "none", freeze)] = [offset + v / 2 for v in CAND]
    cells = make_cells(values)
    rows = comparisons.compare(cells, ComparisonSpec("norm", "batch"), AXES, study="s")
    assert len(rows) == 2 * len(offsets)
    assert set(rows["candidate"]) == {"layer", "none"}
    for (dataset, freeze), offset in offsets.items():
        condition = json.dumps({"dataset": dataset, "freeze": freeze}, separators=(",", ":"))
        row = one_row(rows, candidate="layer", condition=condition)
        assert row["mean_ref"] == pytest.approx(offset + np.mean(REF))
        assert row["diff"] == pytest.approx(np.mean(CAND) - np.mean(REF))
    assert one_row(rows, candidate="none", condition='{"dataset":"noise","freeze":"all"}')[
        "mean_cand"
    ] == pytest.approx(0.6 + np.mean(CAND) / 2)


def test_candidates_restrict_the_comparisons():
    cells = make_cells(
        {("d", "batch", "all"): REF, ("d", "layer", "all"): CAND, ("d", "none", "all"): REF}
    )
    spec = ComparisonSpec("norm", "batch", candidates=("none",))
    rows = comparisons.compare(cells, spec, AXES, study="s")
    assert list(rows["candidate"]) == ["none"]


def test_diverged_cells_count_as_chance():
    statuses = {(("d", "layer", "all"), 1): "diverged", (("d", "layer", "all"), 3): "diverged"}
    cells = make_cells(
        {("d", "batch", "all"): REF, ("d", "layer", "all"): CAND},
        num_classes=4,
        statuses=statuses,
    )
    rows = comparisons.compare(cells, ComparisonSpec("norm", "batch"), AXES, study="s")
    row = rows.iloc[0]
    substituted = np.array([CAND[0], 0.25, CAND[2], 0.25, CAND[4]])
    assert (row["n_cand"], row["n_diverged_cand"], row["n_diverged_ref"]) == (5, 2, 0)
    assert row["mean_cand"] == pytest.approx(substituted.mean())
    assert row["paired"]
    assert row["statistic"] == pytest.approx(sps.ttest_rel(substituted, REF).statistic)
    assert "diverged cells (ref 0, cand 2)" in row["note"] and "chance" in row["note"]


def test_diverged_cells_excluded_are_still_counted():
    statuses = {(("d", "layer", "all"), 1): "diverged"}
    cells = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): CAND}, statuses=statuses)
    spec = ComparisonSpec("norm", "batch", diverged="exclude")
    row = comparisons.compare(cells, spec, AXES, study="s").iloc[0]
    kept = [CAND[0], *CAND[2:]]
    assert (row["n_cand"], row["n_diverged_cand"]) == (4, 1)
    assert row["mean_cand"] == pytest.approx(np.mean(kept))
    assert not row["paired"]
    assert row["p_value"] == pytest.approx(sps.ttest_ind(kept, REF, equal_var=False).pvalue)
    assert "excluded" in row["note"]


def test_diverged_cells_count_as_the_worst_value():
    statuses = {(("d", "batch", "all"), 0): "diverged"}
    cells = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): CAND}, statuses=statuses)
    for metric, worst in (("final_test_acc", 0.79), ("final_test_loss", 1 - 0.79)):
        spec = ComparisonSpec("norm", "batch", metric=metric, diverged="worst")
        row = comparisons.compare(cells, spec, AXES, study="s").iloc[0]
        expected = [worst, *(v if metric.endswith("acc") else 1 - v for v in REF[1:])]
        assert row["mean_ref"] == pytest.approx(np.mean(expected))
        assert row["n_diverged_ref"] == 1


def test_non_finite_metric_counts_as_diverged():
    cells = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): CAND}, num_classes=5)
    cells.loc[(cells["norm"] == "layer") & (cells["seed"] == 0), "final_test_acc"] = math.nan
    row = comparisons.compare(cells, ComparisonSpec("norm", "batch"), AXES, study="s").iloc[0]
    assert row["n_diverged_cand"] == 1
    assert row["mean_cand"] == pytest.approx(np.mean([0.2, *CAND[1:]]))


def test_fewer_than_two_seeds_gives_no_test():
    cells = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): [0.9]})
    row = comparisons.compare(cells, ComparisonSpec("norm", "batch"), AXES, study="s").iloc[0]
    assert (row["n_ref"], row["n_cand"]) == (5, 1)
    assert row["mean_cand"] == pytest.approx(0.9) and math.isnan(row["sd_cand"])
    assert row["mean_ref"] == pytest.approx(np.mean(REF))
    assert not row["paired"]
    for column in ("p_value", "p_value_rank", "ci_low", "ci_high", "hedges_g", "p_holm"):
        assert math.isnan(row[column]), column
    assert comparison_specs.FEWER_THAN_TWO in row["note"]
    single = make_cells({("d", "batch", "all"): [0.8], ("d", "layer", "all"): [0.9]})
    row = comparisons.compare(single, ComparisonSpec("norm", "batch"), AXES, study="s").iloc[0]
    assert not row["paired"] and row["test"] == row["test_rank"] == "none"
    assert row["diff"] == pytest.approx(0.1) and math.isnan(row["p_value"])


def test_all_seeds_excluded_reports_counts():
    statuses = {(("d", "layer", "all"), seed): "diverged" for seed in range(3)}
    cells = make_cells(
        {("d", "batch", "all"): REF[:3], ("d", "layer", "all"): CAND[:3]}, statuses=statuses
    )
    spec = ComparisonSpec("norm", "batch", diverged="exclude")
    row = comparisons.compare(cells, spec, AXES, study="s").iloc[0]
    assert (row["n_cand"], row["n_diverged_cand"]) == (0, 3)
    assert math.isnan(row["mean_cand"]) and math.isnan(row["p_value"])
    assert comparison_specs.FEWER_THAN_TWO in row["note"]


def test_zero_variance_gives_no_t_test():
    cells = make_cells(
        {("d", "batch", "all"): [0.5, 0.5, 0.5], ("d", "layer", "all"): [0.7, 0.7, 0.7]}
    )
    row = comparisons.compare(cells, ComparisonSpec("norm", "batch"), AXES, study="s").iloc[0]
    assert row["paired"] and row["diff"] == pytest.approx(0.2)
    assert (row["sd_ref"], row["sd_cand"]) == (0.0, 0.0)
    assert math.isnan(row["statistic"]) and math.isnan(row["ci_low"])
    assert math.isnan(row["hedges_g"])
    assert row["p_value_rank"] == pytest.approx(sps.wilcoxon([0.2, 0.2, 0.2]).pvalue)
    assert "zero variance" in row["note"]


def test_numeric_levels_and_conditions_are_text():
    cells = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): CAND})
    cells["lr"] = np.where(cells["norm"] == "batch", 0.1, 0.01)
    cells = cells.drop(columns="norm")
    spec = ComparisonSpec("lr", 0.1)
    rows = comparisons.compare(cells, spec, ["dataset", "lr", "freeze", "seed"], study="s")
    row = rows.iloc[0]
    assert (row["reference"], row["candidate"]) == ("0.1", "0.01")
    assert row["family"] == "s/lr=0.1/final_test_acc"
    assert json.loads(row["condition"]) == {"dataset": "d", "freeze": "all"}


def test_option_axes_stored_as_text_match_the_config_values():
    """cells.parquet holds an option axis with non-numeric values as text (str(value));
    the config's reference 2 and True still name their levels."""
    cells = make_cells(
        {
            ("d", "1", "True"): REF,
            ("d", "2", "True"): CAND,
            ("d", "inf", "True"): REF,
            ("d", "2", "False"): REF,
        }
    )
    cells = cells.rename(columns={"norm": "norm_options.p", "freeze": "norm_options.centered"})
    axes = ["dataset", "norm_options.p", "norm_options.centered", "seed"]
    by_p = comparisons.compare(cells, ComparisonSpec("norm_options.p", 2), axes, study="s")
    centred = by_p[[json.loads(c)["norm_options.centered"] == "True" for c in by_p["condition"]]]
    assert sorted(centred["candidate"]) == ["1", "inf"]
    assert set(by_p["reference"]) == {"2"}
    row = one_row(centred, candidate="1")
    assert row["diff"] == pytest.approx(np.mean(REF) - np.mean(CAND))
    by_centring = comparisons.compare(
        cells,
        ComparisonSpec("norm_options.centered", True, candidates=(False,)),
        axes,
        study="s",
    )
    (row,) = [
        r for _, r in by_centring.iterrows() if json.loads(r["condition"])["norm_options.p"] == "2"
    ]
    assert (row["reference"], row["candidate"]) == ("True", "False")
    assert row["diff"] == pytest.approx(np.mean(REF) - np.mean(CAND))
    with pytest.raises(
        ComparisonSpecError,
        match="reference '3' is not a level of 'norm_options.p'; levels: 1, 2, inf",
    ):
        comparisons.compare(cells, ComparisonSpec("norm_options.p", 3), axes, study="s")


def test_holm_within_each_family_across_specs_and_conditions():
    values = {}
    rng = np.random.default_rng(0)
    for dataset in ("a", "b", "c"):
        for norm, shift in (("batch", 0.0), ("layer", 0.02), ("none", -0.03)):
            for freeze in ("all", "norm"):
                values[(dataset, norm, freeze)] = list(0.8 + shift + rng.normal(0, 0.01, 4))
    cells = pd.concat([make_cells(values), make_cells(values, study="t")], ignore_index=True)
    specs = [
        ComparisonSpec("norm", "batch", candidates=("layer",)),
        ComparisonSpec("norm", "batch", candidates=("none",)),
        ComparisonSpec("freeze", "all"),
    ]
    table = comparisons.comparisons_table(cells, {"s": (AXES, specs), "t": (AXES, specs[:1])})
    assert list(table.columns) == comparisons.COMPARISON_COLUMNS
    assert table.groupby("family").size().to_dict() == {
        "s/norm=batch/final_test_acc": 12,
        "s/freeze=all/final_test_acc": 9,
        "t/norm=batch/final_test_acc": 6,
    }
    for _, family in table.groupby("family"):
        np.testing.assert_allclose(family["p_holm"], multiplicity.holm(family["p_value"]))
        np.testing.assert_allclose(family["p_holm_rank"], multiplicity.holm(family["p_value_rank"]))
    single = comparisons.compare(cells, specs[0], AXES, study="s")
    in_table = table[(table["study"] == "s") & (table["candidate"] == "layer")]
    np.testing.assert_allclose(in_table["p_value"], single["p_value"])
    assert (in_table["p_holm"].to_numpy() >= single["p_holm"].to_numpy()).all()


def test_results_are_reproducible():
    cells = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): CAND})
    spec = ComparisonSpec("norm", "batch")
    first = comparisons.compare(cells, spec, AXES, study="s")
    again = comparisons.compare(cells, spec, AXES, study="s")
    pd.testing.assert_frame_equal(first, again)


def test_comparisons_arrow_schema_and_parquet_round_trip(tmp_path):
    cells = make_cells(
        {("d", "batch", "all"): REF, ("d", "layer", "all"): CAND, ("d", "none", "all"): [0.3]}
    )
    table = comparisons.comparisons_table(cells, {"s": (AXES, [ComparisonSpec("norm", "batch")])})
    arrow = comparisons.comparisons_arrow(table)
    assert arrow.schema.equals(comparisons.COMPARISONS_SCHEMA, check_metadata=True)
    for schema_field in comparisons.COMPARISONS_SCHEMA:
        assert schema_field.metadata[b"description"]
    pq.write_table(arrow, tmp_path / "comparisons.parquet")
    back = pq.read_table(tmp_path / "comparisons.parquet")
    assert back.schema.field("p_value").metadata[b"description"]
    assert back.num_rows == 2
    assert back.column("n_cand").to_pylist() == [5, 1]
    empty = comparisons.comparisons_arrow(comparisons.empty_comparisons())
    assert empty.num_rows == 0 and empty.schema.equals(comparisons.COMPARISONS_SCHEMA)


# --------------------------------------------------------------------------- validation


def test_parse_comparisons_fills_defaults():
    specs = comparison_specs.parse_comparisons(
        [
            {"factor": "norm", "reference": "batch"},
            {"factor": "freeze", "reference": "all", "candidates": ["norm"], "diverged": "worst"},
        ],
        AXES,
    )
    assert specs == [
        ComparisonSpec("norm", "batch", "final_test_acc", None, "chance"),
        ComparisonSpec("freeze", "all", "final_test_acc", ("norm",), "worst"),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"factor": "depth", "reference": 14}, "not an axis of the study; axes: dataset"),
        ({"factor": "seed", "reference": 0}, "seed axis"),
        ({"factor": "norm", "reference": "batch", "metric": "acc"}, "valid metrics: best_val"),
        ({"factor": "norm", "reference": "batch", "diverged": "drop"}, "valid policies: chance"),
        ({"factor": "norm", "reference": "batch", "metric": "final_test_loss"}, "'worst'"),
        ({"factor": "norm", "reference": "batch", "level": 1}, "'level'; valid keys: factor"),
        ({"factor": "norm"}, "lacks required key(s) reference"),
        ({"factor": "norm", "reference": "batch", "candidates": ["batch"]}, "also a candidate"),
        ({"factor": "norm", "reference": "batch", "candidates": "layer"}, "must be a list"),
        ({"factor": "norm", "reference": "batch", "candidates": []}, "candidates is empty"),
        ("norm", "must be a mapping"),
    ],
)
def test_bad_specs_fail_with_clear_messages(entry, message):
    with pytest.raises(ComparisonSpecError) as error:
        comparison_specs.parse_comparisons([entry], AXES)
    assert message in str(error.value)


def test_parse_comparisons_checks_levels_against_the_grid():
    grid = {"dataset": ["d"], "norm": ["batch", "layer"], "freeze": ["all"], "seed": [0, 1]}
    with pytest.raises(ComparisonSpecError, match="'group' is not a level of 'norm'; levels: b"):
        comparison_specs.parse_comparisons([{"factor": "norm", "reference": "group"}], grid)
    with pytest.raises(ComparisonSpecError, match="candidate 'weight'"):
        comparison_specs.parse_comparisons(
            [{"factor": "norm", "reference": "batch", "candidates": ["weight"]}], grid
        )


def test_compare_rejects_bad_cells():
    cells = make_cells({("d", "batch", "all"): REF, ("d", "layer", "all"): CAND})
    spec = ComparisonSpec("norm", "batch")
    with pytest.raises(ComparisonSpecError, match="levels: batch, layer"):
        comparisons.compare(cells, ComparisonSpec("norm", "group"), AXES, study="s")
    with pytest.raises(ValueError, match="share their values of the axes"):
        comparisons.compare(cells, spec, ["dataset", "norm", "freeze"], study="s")
    with pytest.raises(KeyError, match="studies: s"):
        comparisons.compare(cells, spec, AXES, study="other")
    failed = cells.assign(status="failed")
    with pytest.raises(ValueError, match="'failed'"):
        comparisons.compare(failed, spec, AXES, study="s")


# ------------------------------------------------------------------------------ ranking


def test_nemenyi_q_matches_demsar_table():
    # Demšar (2006), Table 5(a) alpha = 0.05 and 5(b) alpha = 0.10, k = 2..10
    table_05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    table_10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]
    for k, q05, q10 in zip(range(2, 11), table_05, table_10, strict=True):
        assert ranking.nemenyi_q(k, 0.05) == pytest.approx(q05, abs=2e-3)
        assert ranking.nemenyi_q(k, 0.10) == pytest.approx(q10, abs=2e-3)


def test_demsar_worked_example_cd_and_groups():
    # Demšar (2006) §3.2.2: four C4.5 variants on 14 data sets, chi2_F = 9.28,
    # F_F = 3.69, CD = 1.25 at alpha = 0.05 and 1.12 at alpha = 0.10.
    ranks = {"C4.5": 3.143, "C4.5+m": 2.000, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964}
    assert ranking.nemenyi_critical_difference(4, 14, 0.05) == pytest.approx(1.25, abs=5e-3)
    assert ranking.nemenyi_critical_difference(4, 14, 0.10) == pytest.approx(1.12, abs=5e-3)
    f, _ = ranking.iman_davenport(9.28, 4, 14)
    assert f == pytest.approx(3.69, abs=5e-3)
    cd_05 = ranking.nemenyi_critical_difference(4, 14, 0.05)
    assert ranking.critical_difference_groups(ranks, cd_05) == (
        ("C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"),
    )
    # at 0.10 C4.5 lies more than CD = 1.118 below C4.5+m (1.143) and C4.5+m+cf (1.179)
    cd_10 = ranking.nemenyi_critical_difference(4, 14, 0.10)
    assert ranking.critical_difference_groups(ranks, cd_10) == (
        ("C4.5+m+cf", "C4.5+m", "C4.5+cf"),
        ("C4.5+cf", "C4.5"),
    )


def ranking_cells(table: dict[str, list[float]], seeds: int = 1, spread: float = 0.0):
    """Cells with one block per dataset; ``table`` maps a norm to its value per block."""
    values = {}
    for norm, per_block in table.items():
        for block, value in enumerate(per_block):
            values[(f"d{block}", norm, "all")] = [
                value + spread * (s - (seeds - 1) / 2) for s in range(seeds)
            ]
    return make_cells(values)


def test_friedman_hand_computation():
    # ranks (1 = highest accuracy) per block: a 1,1,2,1; b 2,3,1,2; c 3,2,3,3
    table = {
        "a": [0.90, 0.80, 0.70, 0.95],
        "b": [0.85, 0.60, 0.75, 0.90],
        "c": [0.50, 0.70, 0.65, 0.80],
    }
    result = ranking.friedman_ranks(ranking_cells(table), "norm", AXES)
    assert result.average_ranks == pytest.approx({"a": 1.25, "b": 2.0, "c": 2.75})
    assert result.levels == ("a", "b", "c")
    n, k, rank_sums = 4, 3, np.array([5, 8, 11])
    chi2 = 12 / (n * k * (k + 1)) * (rank_sums**2).sum() - 3 * n * (k + 1)
    assert chi2 == pytest.approx(4.5)
    assert result.statistic == pytest.approx(chi2)
    assert result.p_value == pytest.approx(sps.chi2.sf(4.5, 2))
    assert result.critical_difference == pytest.approx(
        sps.studentized_range.ppf(0.95, 3, np.inf) / math.sqrt(2) * math.sqrt(3 * 4 / 24)
    )
    assert (result.n_blocks, result.n_blocks_dropped) == (4, 0)


def test_friedman_ranks_losses_ascending_and_averages_seeds():
    table = {
        "a": [0.9, 0.8, 0.7, 0.95, 0.6],
        "b": [0.85, 0.6, 0.75, 0.9, 0.61],
        "c": [0.5, 0.7, 0.65, 0.8, 0.62],
        "d": [0.2, 0.3, 0.4, 0.5, 0.62],
    }
    cells = ranking_cells(table, seeds=3, spread=0.01)
    result = ranking.friedman_ranks(cells, "norm", AXES)
    expected = sps.friedmanchisquare(*[np.array(v) for v in table.values()])
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    loss = ranking.friedman_ranks(cells, "norm", AXES, metric="final_test_loss", diverged="worst")
    assert list(loss.average_ranks) == list(result.average_ranks)
    assert loss.average_ranks == pytest.approx(result.average_ranks)
    assert loss.average_ranks["d"] == pytest.approx((4 + 4 + 4 + 4 + 1.5) / 5)


def test_friedman_counts_dropped_blocks_and_diverged_cells():
    table = {"a": [0.9, 0.8, 0.7], "b": [0.85, 0.6, 0.75], "c": [0.5, 0.7, 0.65]}
    cells = ranking_cells(table, seeds=2)
    statuses = (cells["norm"] == "c") & (cells["dataset"] == "d2")
    cells.loc[statuses, "status"] = "diverged"
    cells.loc[statuses, "final_test_acc"] = math.nan
    excluded = ranking.friedman_ranks(cells, "norm", AXES, diverged="exclude")
    assert (excluded.n_blocks, excluded.n_blocks_dropped) == (2, 1)
    assert excluded.dropped_blocks == ('{"dataset":"d2","freeze":"all"}',)
    assert excluded.n_diverged == {"a": 0, "b": 0, "c": 2}
    assert "1 block(s) dropped" in excluded.note and "2 diverged cell(s)" in excluded.note
    chance = ranking.friedman_ranks(cells, "norm", AXES)
    assert (chance.n_blocks, chance.n_blocks_dropped) == (3, 0)
    assert chance.ranks.loc['{"dataset":"d2","freeze":"all"}', "c"] == 3.0
    two_levels = ranking.friedman_ranks(cells, "norm", AXES, levels=["a", "b"])
    assert math.isnan(two_levels.statistic) and "three levels" in two_levels.note
    assert two_levels.average_ranks == pytest.approx({"a": 4 / 3, "b": 5 / 3})


def test_iman_davenport_is_infinite_when_every_block_ranks_the_same():
    # chi2 = N (k - 1) is the maximum: full agreement, F_F = +inf and p = 0, not NaN
    assert ranking.iman_davenport(5 * 2, 3, 5) == (math.inf, 0.0)
    table = {"a": [0.9, 0.8, 0.7, 0.95], "b": [0.85, 0.6, 0.65, 0.9], "c": [0.5, 0.5, 0.6, 0.8]}
    result = ranking.friedman_ranks(ranking_cells(table), "norm", AXES)
    assert result.statistic == pytest.approx(4 * 2)
    assert result.iman_davenport_f == math.inf and result.iman_davenport_p == 0.0
    f, p = ranking.iman_davenport(7.9, 3, 4)
    assert f == pytest.approx(3 * 7.9 / (8 - 7.9)) and 0 < p < 1e-3
    assert all(math.isnan(v) for v in ranking.iman_davenport(2.0, 3, 1))


def test_one_block_has_no_friedman_test_or_critical_difference():
    table = {"a": [0.9], "b": [0.85], "c": [0.5]}
    result = ranking.friedman_ranks(ranking_cells(table, seeds=2, spread=0.01), "norm", AXES)
    assert result.n_blocks == 1
    assert math.isnan(result.statistic) and math.isnan(result.p_value)
    assert math.isnan(result.iman_davenport_f) and math.isnan(result.iman_davenport_p)
    assert math.isnan(result.critical_difference) and result.groups == ()
    assert result.note == ranking.FEWER_THAN_TWO_BLOCKS and "undefined" in result.note
    assert result.average_ranks == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert math.isnan(ranking.nemenyi_critical_difference(3, 1))
    two = ranking.friedman_ranks(
        ranking_cells({"a": [0.9, 0.8], "b": [0.85, 0.9], "c": [0.5, 0.6]}), "norm", AXES
    )
    assert two.n_blocks == 2 and math.isfinite(two.critical_difference)
    assert math.isfinite(two.statistic) and two.note == ""


def test_condition_json_writes_integer_axes_as_the_config_did():
    import numpy as np

    from normstudy.stats_common import condition_json

    key = (np.float64(8.0), np.float64(0.5), "digits", np.int64(3))
    text = condition_json(["depth", "width", "dataset", "seed"], key)
    assert text == '{"dataset":"digits","depth":8,"seed":3,"width":0.5}'
