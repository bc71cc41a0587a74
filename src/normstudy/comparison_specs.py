"""Comparison specs of ``config.yaml`` (``comparisons:``), validated without numpy or scipy.

Kept apart from :mod:`normstudy.comparisons` so that the workflow can check every study's
comparisons while Snakemake parses the Snakefile, without importing the numerical stack.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def python_value(value: object) -> object:
    """A numpy scalar as the equal Python scalar; anything else unchanged."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def level_text(level: object) -> str:
    """A level as text: strings as they are, other values as JSON (``0.1``, ``true``)."""
    level = python_value(level)
    return level if isinstance(level, str) else json.dumps(level)


METRICS: dict[str, str] = {
    "final_test_acc": "higher",
    "final_val_acc": "higher",
    "final_train_acc": "higher",
    "best_val_acc": "higher",
    "final_test_loss": "lower",
    "final_val_loss": "lower",
    "final_train_loss": "lower",
    "generalization_gap": "lower",
    # from the probes (normstudy.probe_metrics); "lower" after Li et al. (2020), whom
    # Morwani (2020) §4 follows: a flatter, nearer optimum is expected to generalize better
    "final_distance_from_init": "lower",
    "final_hessian_top_eigenvalue": "lower",
}
"""Metric columns of ``cells`` that can be compared, and which direction is better."""

DIVERGED_POLICIES: dict[str, str] = {
    "chance": "counted as chance accuracy (1/num_classes)",
    "worst": "counted as the worst finite value of the metric among the study's ok cells",
    "exclude": "excluded from the numbers",
}
"""How a diverged cell enters the numbers of a comparison or ranking (``chance`` only for
accuracy metrics; ``worst`` is the lowest accuracy, or the highest loss or gap)."""

STATUSES = ("ok", "diverged")
SPEC_KEYS = (
    "factor",
    "reference",
    "metric",
    "candidates",
    "diverged",
    "smallest_effect",
    "equivalence_margin",
    "tune",
    "tune_metric",
)
TREND_KEYS = ("trend", "metric", "scale", "diverged")
TREND_SCALES = ("log", "linear")
DEFAULT_TUNE_METRIC = "final_val_acc"
FEWER_THAN_TWO = "fewer than two seeds on a side: no test, no interval, no effect size"


class ComparisonSpecError(ValueError):
    """A comparison declared in the config that cannot be made; the message says why."""


@dataclass(frozen=True)
class ComparisonSpec:
    """One entry of a study's ``comparisons:`` list in config.yaml.

    ``candidates`` defaults to every level of ``factor`` other than ``reference``;
    ``diverged`` is one of :data:`DIVERGED_POLICIES`; ``smallest_effect`` is the smallest
    difference of interest in the metric's units (e.g. 0.01 = one point of accuracy), for
    which :mod:`normstudy.power` reports the seeds needed.
    """

    factor: str
    reference: object
    metric: str = "final_test_acc"
    candidates: tuple | None = None
    diverged: str = "chance"
    smallest_effect: float | None = None
    equivalence_margin: float | None = None
    tune: tuple[str, ...] | None = None
    tune_metric: str | None = None


@dataclass(frozen=True)
class TrendSpec:
    """A ``{trend: axis, metric: ..., scale: log|linear, diverged: ...}`` entry: whether the
    metric improves along an ordered numeric axis (Frankle, Schwab & Morcos 2020, §4 and
    figure 2: BN-only accuracy grows with depth); :mod:`normstudy.trends` computes it."""

    trend: str
    metric: str = "final_test_acc"
    scale: str = "log"
    diverged: str = "chance"


# ---------------------------------------------------------------------------- validation


def metric_direction(metric: str) -> str:
    """``"higher"`` or ``"lower"``: which values of ``metric`` are better."""
    try:
        return METRICS[metric]
    except KeyError:
        raise ComparisonSpecError(
            f"unknown metric {metric!r}; valid metrics: {', '.join(sorted(METRICS))}"
        ) from None


def validate_diverged_policy(diverged: str, metric: str) -> None:
    if diverged not in DIVERGED_POLICIES:
        raise ComparisonSpecError(
            f"unknown diverged policy {diverged!r}; valid policies: {', '.join(DIVERGED_POLICIES)}"
        )
    if diverged == "chance" and not metric.endswith("_acc"):
        raise ComparisonSpecError(
            f"diverged policy 'chance' needs an accuracy metric (*_acc), not {metric!r}; "
            "use 'worst' or 'exclude'"
        )


def validate_factor(factor: str, axes: Sequence[str], seed_axis: str) -> None:
    if factor == seed_axis:
        raise ComparisonSpecError(
            f"factor {factor!r} is the seed axis; seeds are the replicates, not a factor"
        )
    if factor not in axes:
        raise ComparisonSpecError(
            f"factor {factor!r} is not an axis of the study; axes: {', '.join(axes)}"
        )


def is_level(value: object, levels: Sequence[object]) -> bool:
    """Whether ``value`` is one of ``levels``, where a boolean matches only a boolean:
    Python's ``True == 1`` would let ``reference: true`` pick the level 1 of a numeric axis."""
    return any(
        value == level and isinstance(value, bool) == isinstance(level, bool) for level in levels
    )


def validate_levels(spec: ComparisonSpec, levels: Sequence[object]) -> None:
    """Reference and candidates must be levels of the factor; ``levels`` lists the valid ones."""
    listed = ", ".join(level_text(level) for level in levels)
    if not is_level(spec.reference, levels):
        raise ComparisonSpecError(
            f"reference {spec.reference!r} is not a level of {spec.factor!r}; levels: {listed}"
        )
    for candidate in spec.candidates or ():
        if not is_level(candidate, levels):
            raise ComparisonSpecError(
                f"candidate {candidate!r} is not a level of {spec.factor!r}; levels: {listed}"
            )


def validate_smallest_effect(factor: str, value: object, key: str = "smallest_effect") -> None:
    """None, or a positive finite number (not a boolean, which YAML makes of ``yes``)."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ComparisonSpecError(
            f"comparison of {factor!r}: {key} must be a positive number in the "
            f"metric's units (e.g. 0.01 for one point of accuracy), not {value!r}"
        )


def validate_tuning(spec: ComparisonSpec, axes: Sequence[str], seed_axis: str) -> None:
    """``tune`` lists grid axes other than the factor and the seed; ``tune_metric`` is a
    known metric other than the compared one ("Is Batch Norm unique?" 2020, §7: each
    normalizer at its own tuned learning rate, chosen on validation, reported on test)."""
    if spec.tune is None:
        if spec.tune_metric is not None:
            raise ComparisonSpecError(
                f"comparison of {spec.factor!r}: tune_metric {spec.tune_metric!r} needs "
                "tune: [axis, ...] (the axes to tune)"
            )
        return
    if len(spec.tune) == 0 or len(set(spec.tune)) != len(spec.tune):
        raise ComparisonSpecError(
            f"comparison of {spec.factor!r}: tune must list distinct grid axes, "
            f"not {list(spec.tune)!r}"
        )
    for axis in spec.tune:
        if axis in (spec.factor, seed_axis) or axis not in axes:
            valid = [a for a in axes if a not in (spec.factor, seed_axis)]
            raise ComparisonSpecError(
                f"comparison of {spec.factor!r}: cannot tune {axis!r}; "
                f"axes that can be tuned: {', '.join(valid) or '(none)'}"
            )
    tune_metric = spec.tune_metric or DEFAULT_TUNE_METRIC
    metric_direction(tune_metric)
    if tune_metric.startswith("final_test"):
        raise ComparisonSpecError(
            f"comparison of {spec.factor!r}: tune_metric {tune_metric!r} reads the test set; "
            "tune on a validation metric (final_val_acc, final_val_loss, best_val_acc)"
        )
    if tune_metric == spec.metric:
        raise ComparisonSpecError(
            f"comparison of {spec.factor!r}: tune_metric {tune_metric!r} is the compared "
            "metric; tune on a validation metric (e.g. final_val_acc) and compare on another"
        )
    validate_diverged_policy(spec.diverged, tune_metric)


def validate_spec(spec: ComparisonSpec, axes: Sequence[str], seed_axis: str = "seed") -> None:
    """Raise :class:`ComparisonSpecError` if ``spec`` cannot be made on a study with ``axes``."""
    validate_factor(spec.factor, axes, seed_axis)
    metric_direction(spec.metric)
    validate_diverged_policy(spec.diverged, spec.metric)
    validate_smallest_effect(spec.factor, spec.smallest_effect)
    validate_smallest_effect(spec.factor, spec.equivalence_margin, "equivalence_margin")
    validate_tuning(spec, axes, seed_axis)
    if spec.candidates is not None:
        if len(spec.candidates) == 0:
            raise ComparisonSpecError(f"comparison of {spec.factor!r}: candidates is empty")
        if spec.reference in spec.candidates:
            raise ComparisonSpecError(
                f"comparison of {spec.factor!r}: the reference {spec.reference!r} "
                "is also a candidate"
            )


def spec_from_entry(entry: object, axes: Sequence[str], seed_axis: str) -> ComparisonSpec:
    if not isinstance(entry, Mapping):
        raise ComparisonSpecError(
            f"a comparison must be a mapping with keys {', '.join(SPEC_KEYS)}; got {entry!r}"
        )
    unknown = sorted(set(entry) - set(SPEC_KEYS))
    if unknown:
        raise ComparisonSpecError(
            f"unknown comparison key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(SPEC_KEYS)}"
        )
    missing = [key for key in ("factor", "reference") if key not in entry]
    if missing:
        raise ComparisonSpecError(
            f"comparison {dict(entry)!r} lacks required key(s) {', '.join(missing)}"
        )
    candidates = entry.get("candidates")
    if candidates is not None:
        if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
            raise ComparisonSpecError(
                f"comparison of {entry['factor']!r}: candidates must be a list, not {candidates!r}"
            )
        candidates = tuple(candidates)
    spec = ComparisonSpec(
        factor=entry["factor"],
        reference=entry["reference"],
        metric=entry.get("metric", ComparisonSpec.metric),
        candidates=candidates,
        diverged=entry.get("diverged", ComparisonSpec.diverged),
        smallest_effect=entry.get("smallest_effect"),
        equivalence_margin=entry.get("equivalence_margin"),
        tune=tune_axes(entry),
        tune_metric=entry.get("tune_metric"),
    )
    validate_spec(spec, list(axes), seed_axis)
    return spec


def tune_axes(entry: Mapping) -> tuple[str, ...] | None:
    tune = entry.get("tune")
    if tune is None:
        return None
    is_list = isinstance(tune, Sequence) and not isinstance(tune, (str, bytes))
    if not is_list or not all(isinstance(axis, str) for axis in tune):
        raise ComparisonSpecError(
            f"comparison of {entry['factor']!r}: tune must be a list of grid axes, not {tune!r}"
        )
    return tuple(tune)


# ----------------------------------------------------------------------------- trends


def trend_from_entry(entry: Mapping, axes: Sequence[str], seed_axis: str) -> TrendSpec:
    unknown = sorted(set(entry) - set(TREND_KEYS))
    if unknown:
        raise ComparisonSpecError(
            f"unknown trend key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(TREND_KEYS)}"
        )
    spec = TrendSpec(
        trend=entry["trend"],
        metric=entry.get("metric", TrendSpec.metric),
        scale=entry.get("scale", TrendSpec.scale),
        diverged=entry.get("diverged", TrendSpec.diverged),
    )
    validate_factor(spec.trend, axes, seed_axis)
    metric_direction(spec.metric)
    validate_diverged_policy(spec.diverged, spec.metric)
    if spec.scale not in TREND_SCALES:
        raise ComparisonSpecError(
            f"trend of {spec.trend!r}: unknown scale {spec.scale!r}; "
            f"valid scales: {', '.join(TREND_SCALES)}"
        )
    return spec


def validate_trend_levels(spec: TrendSpec, levels: Sequence[object]) -> None:
    """The trend axis must be numeric (not boolean) with two or more values, all positive
    on a log scale."""
    listed = ", ".join(level_text(level) for level in levels)
    numeric = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in levels
    )
    if not numeric or len(set(levels)) < 2:
        raise ComparisonSpecError(
            f"trend of {spec.trend!r}: the axis needs two or more finite numeric values; "
            f"values: {listed}"
        )
    if spec.scale == "log" and min(levels) <= 0:
        raise ComparisonSpecError(
            f"trend of {spec.trend!r}: scale 'log' needs positive values; values: {listed}; "
            "use scale: linear"
        )


def parse_trends(
    entries: Sequence[Mapping],
    axes: Sequence[str] | Mapping[str, Sequence],
    *,
    seed_axis: str = "seed",
) -> list[TrendSpec]:
    """The trend entries (those with a ``trend`` key) of a study's comparisons, validated;
    given the grid (axis -> values), the axis's values are checked too."""
    specs = [
        trend_from_entry(entry, list(axes), seed_axis)
        for entry in entries
        if isinstance(entry, Mapping) and "trend" in entry
    ]
    if isinstance(axes, Mapping):
        for spec in specs:
            validate_trend_levels(spec, list(axes[spec.trend]))
    return specs


def parse_comparisons(
    entries: Sequence[Mapping],
    axes: Sequence[str] | Mapping[str, Sequence],
    *,
    seed_axis: str = "seed",
) -> list[ComparisonSpec]:
    """The comparisons of one study, validated.

    ``axes`` lists the study's grid axes; given the grid itself (axis -> values), the
    reference and candidates are also checked against the axis's values. Trend entries
    (``trend:`` key) are validated too but returned by :func:`parse_trends`, not here.
    """
    parse_trends(entries, axes, seed_axis=seed_axis)
    specs = [
        spec_from_entry(entry, list(axes), seed_axis)
        for entry in entries
        if not (isinstance(entry, Mapping) and "trend" in entry)
    ]
    if isinstance(axes, Mapping):
        for spec in specs:
            validate_levels(spec, list(axes[spec.factor]))
    return specs


# ------------------------------------------------------------------------------ cells
