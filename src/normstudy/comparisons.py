"""The comparisons table: every declared comparison of every study, one row per level,
reference and condition (:data:`COMPARISONS_SCHEMA`), Holm-adjusted within families.

Works on the ``cells`` table (one row per study and cell, one column per grid axis, a
``status`` and the final metrics); imports no torch. :func:`compare` runs one
comparison spec (one level of a factor, e.g. a normalizer, against a reference level,
within every combination of the other axes, over seeds; the numbers of each row are
:func:`normstudy.pairwise.comparison_numbers`); :func:`tuned_compare` a ``tune:`` one
(:mod:`normstudy.tuning`). Rankings of many levels over many conditions are in
:mod:`normstudy.ranking`, trends along an ordered axis in :mod:`normstudy.trends`.

Diverged cells are failures, never dropped silently: they enter the numbers according
to the comparison's ``diverged`` policy and are always counted. A cell whose metric is
not finite counts as diverged too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pandas as pd
import pyarrow as pa

from normstudy.comparison_schema import (
    COMPARISON_COLUMNS,
    COMPARISONS_SCHEMA,
)
from normstudy.comparison_specs import (
    ComparisonSpec,
    level_text,
    validate_levels,
    validate_spec,
)
from normstudy.multiplicity import holm_within_families
from normstudy.pairwise import Side, comparison_numbers, diverged_note, mean, pairs_up, sd, side_of
from normstudy.stats_common import (
    check_columns,
    checked_cells,
    condition_json,
    failed_cells,
    frame_arrow,
    grouped_by,
    metric_values,
    sorted_levels,
    spec_in_table_levels,
    worst_value,
)
from normstudy.tuning import TUNING_COLUMNS, select_tuned, tune_metric_of


def family_name(study: str, factor: str, reference: object, metric: str, tune=None) -> str:
    """study/factor=reference/metric, with /tuned:axes for a tuned comparison."""
    family = f"{study}/{factor}={level_text(reference)}/{metric}"
    return f"{family}/tuned:{','.join(tune)}" if tune else family


def tuned_compare(
    cells: pd.DataFrame,
    spec: ComparisonSpec,
    axes: Sequence[str],
    *,
    study: str,
    seed_axis: str = "seed",
    confidence: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(comparison rows, tuning rows) of a ``tune:`` comparison (:mod:`normstudy.tuning`):
    each level at its own best values of the tuned axes, then :func:`compare` on those
    cells with the tuned axes dropped, paired by seed as usual."""
    frame = checked_cells(cells, study, axes, [spec.metric, tune_metric_of(spec)])
    family = family_name(study, spec.factor, spec.reference, spec.metric, spec.tune)
    chosen_cells, chosen, tuning = select_tuned(
        frame, spec, axes, study=study, family=family, seed_axis=seed_axis
    )
    untuned = replace(spec, tune=None, tune_metric=None)
    rest = [axis for axis in axes if axis not in spec.tune]
    rows = compare(
        chosen_cells, untuned, rest, study=study, seed_axis=seed_axis, confidence=confidence
    )
    if not len(rows):
        return rows, tuning
    rows["family"] = family
    rows["tuned_axes"] = json.dumps(list(spec.tune))
    rows["tune_metric"] = tune_metric_of(spec)
    for side in ("reference", "candidate"):
        rows[f"{side}_tuned"] = [
            chosen.get((level, condition))
            for level, condition in zip(rows[side], rows["condition"], strict=True)
        ]
    return with_holm(rows), tuning


def tuning_table(
    cells: pd.DataFrame,
    studies: Mapping[str, tuple[Sequence[str], Sequence[ComparisonSpec]]],
    *,
    seed_axis: str = "seed",
) -> pd.DataFrame:
    """Every tuned value's mean tune_metric per level, chosen ones marked
    (:data:`normstudy.tuning.TUNING_COLUMNS`), for the ``tune:`` comparisons of ``studies``."""
    parts = [
        tuned_compare(cells, spec, axes, study=study, seed_axis=seed_axis)[1]
        for study, (axes, specs) in studies.items()
        for spec in specs
        if spec.tune
    ]
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TUNING_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def empty_comparisons() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in COMPARISON_COLUMNS})


def with_holm(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with p_holm, p_holm_rank and p_holm_tost adjusted within each family."""
    pairs = [("p_value", "p_holm"), ("p_value_rank", "p_holm_rank"), ("tost_p", "p_holm_tost")]
    return holm_within_families(rows, pairs)


def spec_and_candidates(spec: ComparisonSpec, frame: pd.DataFrame) -> tuple[ComparisonSpec, list]:
    """``spec`` with its levels as the table spells them, checked against the levels in
    ``frame``, and the levels it compares with the reference (default: all others)."""
    levels = sorted_levels(frame[spec.factor])
    spec = spec_in_table_levels(spec, levels)
    validate_levels(spec, levels)
    return spec, list(spec.candidates or [level for level in levels if level != spec.reference])


def compare(
    cells: pd.DataFrame,
    spec: ComparisonSpec,
    axes: Sequence[str],
    *,
    study: str,
    seed_axis: str = "seed",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Every candidate against the reference within every combination of the other axes.

    One row per (candidate, condition), columns :data:`COMPARISON_COLUMNS`. A condition
    is one combination of the axes other than ``spec.factor`` and ``seed_axis`` (a study
    without a seed axis has one cell per side). Tests are paired (ttest_rel, Wilcoxon)
    when the same seeds, at least two, are in the numbers of both sides, unpaired
    (Welch, Mann-Whitney U) otherwise; with fewer than two values on a side there is no
    test, interval or effect size, and the note says so. p_holm is Holm within these
    rows, i.e. within the family (study, factor, reference, metric) of this spec;
    :func:`comparisons_table` adjusts across specs that share a family.
    """
    axes = list(axes)
    validate_spec(spec, axes, seed_axis)
    if spec.tune:
        return tuned_compare(
            cells, spec, axes, study=study, seed_axis=seed_axis, confidence=confidence
        )[0]
    frame = checked_cells(cells, study, axes, [spec.metric])
    spec, candidates = spec_and_candidates(spec, frame)
    rows = [
        row
        for candidate in candidates
        for row in candidate_rows(
            frame, spec, candidate, axes, study=study, seed_axis=seed_axis, confidence=confidence
        )
    ]
    if not rows:
        return empty_comparisons()
    return with_holm(pd.DataFrame(rows, columns=COMPARISON_COLUMNS))


def candidate_rows(
    frame: pd.DataFrame,
    spec: ComparisonSpec,
    candidate: object,
    axes: Sequence[str],
    *,
    study: str,
    seed_axis: str,
    confidence: float,
) -> list[dict]:
    """The rows of one candidate against ``spec.reference``, one per condition, in the
    order of :func:`normstudy.stats_common.grouped_by`."""
    seeds = seed_axis if seed_axis in axes else None
    condition_axes = [axis for axis in axes if axis not in (spec.factor, seed_axis)]
    values = metric_values(frame, spec.metric, spec.diverged)
    failed = failed_cells(frame, spec.metric)
    worst = worst_value(frame, spec.metric) if spec.diverged == "worst" else math.nan
    family = family_name(study, spec.factor, spec.reference, spec.metric)
    rows = []
    for key, group in grouped_by(frame, condition_axes):
        reference_side = side_of(group[group[spec.factor] == spec.reference], values, failed, seeds)
        candidate_side = side_of(group[group[spec.factor] == candidate], values, failed, seeds)
        identity = {
            "study": study,
            "family": family,
            "factor": spec.factor,
            "reference": level_text(spec.reference),
            "candidate": level_text(candidate),
            "condition": condition_json(condition_axes, key),
            "metric": spec.metric,
            "diverged_policy": spec.diverged,
        }
        rows.append(
            comparison_row(
                reference_side,
                candidate_side,
                identity=identity,
                policy=spec.diverged,
                worst=worst,
                seed_axis=seeds,
                confidence=confidence,
                smallest_effect=spec.smallest_effect,
                equivalence_margin=spec.equivalence_margin,
            )
        )
    return rows


def comparison_row(
    reference: Side,
    candidate: Side,
    *,
    identity: dict,
    policy: str,
    worst: float,
    seed_axis: str | None,
    confidence: float,
    smallest_effect: float | None = None,
    equivalence_margin: float | None = None,
) -> dict:
    notes = []
    for name, side in (("reference", reference), ("candidate", candidate)):
        if side.n_cells == 0:
            notes.append(f"no cells for the {name} in this condition")
    note = diverged_note(reference, candidate, policy, worst)
    if note:
        notes.append(note)
    paired = pairs_up(reference, candidate, seed_axis)
    both_replicated = len(reference.values) >= 2 and len(candidate.values) >= 2
    if seed_axis is not None and both_replicated and not paired:
        notes.append("seeds differ between the sides: unpaired tests")
    numbers, number_notes = comparison_numbers(
        reference,
        candidate,
        paired=paired,
        confidence=confidence,
        smallest_effect=smallest_effect,
        equivalence_margin=equivalence_margin,
    )
    mean_ref, mean_cand = mean(reference.values), mean(candidate.values)
    return {
        **identity,
        "n_ref": len(reference.values),
        "n_cand": len(candidate.values),
        "n_diverged_ref": reference.n_diverged,
        "n_diverged_cand": candidate.n_diverged,
        "mean_ref": mean_ref,
        "sd_ref": sd(reference.values),
        "mean_cand": mean_cand,
        "sd_cand": sd(candidate.values),
        "diff": mean_cand - mean_ref,
        "confidence": confidence,
        "paired": paired,
        **numbers,
        "p_holm": math.nan,
        "p_holm_rank": math.nan,
        "p_holm_tost": math.nan,
        "note": "; ".join(notes + number_notes),
        "tuned_axes": None,
        "tune_metric": None,
        "reference_tuned": None,
        "candidate_tuned": None,
    }


def comparisons_table(
    cells: pd.DataFrame,
    studies: Mapping[str, tuple[Sequence[str], Sequence[ComparisonSpec]]],
    *,
    seed_axis: str = "seed",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Every declared comparison of every study (study -> (axes, specs)), Holm-adjusted
    within each family (study, factor, reference, metric) across all its candidates and
    conditions. Columns :data:`COMPARISON_COLUMNS`."""
    parts = [
        compare(
            cells,
            spec,
            axes,
            study=study,
            seed_axis=seed_axis,
            confidence=confidence,
        )
        for study, (axes, specs) in studies.items()
        for spec in specs
    ]
    parts = [part for part in parts if len(part)]
    if not parts:
        return empty_comparisons()
    return with_holm(pd.concat(parts, ignore_index=True))


def comparisons_arrow(df: pd.DataFrame) -> pa.Table:
    """``df`` (from :func:`comparisons_table`) as a table with :data:`COMPARISONS_SCHEMA`."""
    check_columns(df, COMPARISON_COLUMNS)
    return frame_arrow(df, COMPARISONS_SCHEMA)
