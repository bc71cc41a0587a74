"""The columns of the comparisons table, ``results/tables/comparisons.parquet``: one
field per number a comparison reports (:mod:`normstudy.comparisons` fills them), each
with the description stored in the Parquet metadata."""

from __future__ import annotations

import pyarrow as pa

from normstudy.stats_common import schema_of

COMPARISON_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("study", pa.string(), False, "study name"),
    ("family", pa.string(), False, "Holm family: study/factor=reference/metric"),
    ("factor", pa.string(), False, "the axis compared"),
    ("reference", pa.string(), False, "reference level (strings as is, other values as JSON)"),
    ("candidate", pa.string(), False, "level compared with the reference"),
    (
        "condition",
        pa.string(),
        False,
        "values of the other axes (not factor, not seed) as JSON with sorted keys",
    ),
    ("metric", pa.string(), False, "metric column of cells compared"),
    ("diverged_policy", pa.string(), False, "how diverged cells entered: chance, worst, exclude"),
    ("n_ref", pa.int32(), False, "values of the reference side in the numbers (seeds)"),
    ("n_cand", pa.int32(), False, "values of the candidate side in the numbers (seeds)"),
    ("n_diverged_ref", pa.int32(), False, "diverged cells on the reference side"),
    ("n_diverged_cand", pa.int32(), False, "diverged cells on the candidate side"),
    ("mean_ref", pa.float64(), True, "mean of the reference side"),
    ("sd_ref", pa.float64(), True, "standard deviation of the reference side (ddof=1)"),
    ("mean_cand", pa.float64(), True, "mean of the candidate side"),
    ("sd_cand", pa.float64(), True, "standard deviation of the candidate side (ddof=1)"),
    ("diff", pa.float64(), True, "mean_cand - mean_ref"),
    ("ci_low", pa.float64(), True, "lower end of the confidence interval of diff (ci_method)"),
    ("ci_high", pa.float64(), True, "upper end of the confidence interval of diff (ci_method)"),
    ("confidence", pa.float64(), False, "confidence level of the intervals"),
    (
        "ci_method",
        pa.string(),
        False,
        "how ci_low/ci_high were made: paired_t (t on the paired differences), welch_t, "
        "or none (no interval; note says why)",
    ),
    ("paired", pa.bool_(), False, "same seeds (at least two) on both sides: paired tests"),
    ("test", pa.string(), False, "t-test: ttest_rel (paired), welch, none (< 2 seeds a side)"),
    ("statistic", pa.float64(), True, "t statistic (candidate minus reference)"),
    ("p_value", pa.float64(), True, "two-sided p-value of the t-test"),
    ("test_rank", pa.string(), False, "rank test: wilcoxon (paired), mannwhitneyu, none"),
    ("statistic_rank", pa.float64(), True, "statistic of the rank test as scipy returns it"),
    ("p_value_rank", pa.float64(), True, "two-sided p-value of the rank test"),
    (
        "hedges_g",
        pa.float64(),
        True,
        "pooled-SD standardized mean difference with J = 1 - 3/(4(n1+n2)-9), also when paired",
    ),
    (
        "g_low",
        pa.float64(),
        True,
        "lower end of the noncentral-t interval of the standardized difference (sides "
        "taken as independent: wider than needed for positively correlated paired seeds)",
    ),
    ("g_high", pa.float64(), True, "upper end of that interval"),
    ("p_holm", pa.float64(), True, "Holm-adjusted p_value within the family"),
    ("p_holm_rank", pa.float64(), True, "Holm-adjusted p_value_rank within the family"),
    (
        "effect_power",
        pa.float64(),
        True,
        "observed standardized effect the power uses: mean/SD of the paired differences "
        "(d_z) when paired, diff / pooled SD when not",
    ),
    (
        "power_now",
        pa.float64(),
        True,
        "power of the two-sided t-test (alpha 0.05) with min(n_ref, n_cand) seeds at "
        "effect_power (post hoc: restates the p-value; a rough guide only)",
    ),
    (
        "n_needed",
        pa.int32(),
        True,
        "seeds per side for 80% power (two-sided alpha 0.05) at the observed effect; null "
        "if the effect is zero, undefined or needs more than 1000 seeds",
    ),
    (
        "smallest_effect",
        pa.float64(),
        True,
        "smallest effect of interest declared in config.yaml, in the metric's units",
    ),
    (
        "n_needed_smallest",
        pa.int32(),
        True,
        "seeds per side for 80% power at smallest_effect, standardized by the observed SD",
    ),
    ("note", pa.string(), False, "why numbers are missing and how diverged cells entered"),
    (
        "equivalence_margin",
        pa.float64(),
        True,
        "equivalence margin declared in config.yaml (metric units); null if none",
    ),
    (
        "tost_p",
        pa.float64(),
        True,
        "TOST p-value: the larger of the two one-sided t-tests of diff against ±margin "
        "(same paired/Welch t as p_value; not Holm-adjusted)",
    ),
    (
        "p_holm_tost",
        pa.float64(),
        True,
        "Holm-adjusted tost_p within the family: for claiming equivalence in some "
        "conditions; equivalence in every condition needs only each tost_p < 0.05 "
        "(intersection-union test, Berger & Hsu 1996, Stat. Sci. 11:283)",
    ),
    ("eq_low", pa.float64(), True, "lower end of the 90% t interval of diff (TOST's interval)"),
    ("eq_high", pa.float64(), True, "upper end of the 90% t interval of diff"),
    (
        "equivalence",
        pa.string(),
        True,
        "equivalence verdict at alpha 0.05 on the unadjusted tost_p and p_value "
        "(normstudy.equivalence.VERDICTS); null if no margin",
    ),
    (
        "tuned_axes",
        pa.string(),
        True,
        "axes tuned per level (JSON list), on tune_metric; null if not a tuned comparison",
    ),
    ("tune_metric", pa.string(), True, "metric the tuned values were chosen on"),
    (
        "reference_tuned",
        pa.string(),
        True,
        "the reference's chosen values of the tuned axes in this condition (JSON)",
    ),
    ("candidate_tuned", pa.string(), True, "the candidate's chosen values (JSON)"),
]


COMPARISONS_SCHEMA = schema_of(
    COMPARISON_FIELDS,
    "one row per statistical comparison: a candidate level of a factor against the reference "
    "level within one combination of the other axes, over seeds (normstudy.comparisons.compare); "
    "NaN where a number cannot be computed, with the reason in note",
)
"""Schema of ``results/tables/comparisons.parquet``; each field's metadata describes it."""


COMPARISON_COLUMNS = [name for name, *_ in COMPARISON_FIELDS]
