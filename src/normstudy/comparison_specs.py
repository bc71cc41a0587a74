"""Comparison specs of ``config.yaml`` (``comparisons:``), validated without numpy or scipy.

Kept apart from :mod:`normstudy.stats` so that the workflow can check every study's
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
SPEC_KEYS = ("factor", "reference", "metric", "candidates", "diverged", "smallest_effect")
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


def validate_smallest_effect(factor: str, value: object) -> None:
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
            f"comparison of {factor!r}: smallest_effect must be a positive number in the "
            f"metric's units (e.g. 0.01 for one point of accuracy), not {value!r}"
        )


def validate_spec(spec: ComparisonSpec, axes: Sequence[str], seed_axis: str = "seed") -> None:
    """Raise :class:`ComparisonSpecError` if ``spec`` cannot be made on a study with ``axes``."""
    validate_factor(spec.factor, axes, seed_axis)
    metric_direction(spec.metric)
    validate_diverged_policy(spec.diverged, spec.metric)
    validate_smallest_effect(spec.factor, spec.smallest_effect)
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
    )
    validate_spec(spec, list(axes), seed_axis)
    return spec


def parse_comparisons(
    entries: Sequence[Mapping],
    axes: Sequence[str] | Mapping[str, Sequence],
    *,
    seed_axis: str = "seed",
) -> list[ComparisonSpec]:
    """The comparisons of one study, validated.

    ``axes`` lists the study's grid axes; given the grid itself (axis -> values), the
    reference and candidates are also checked against the axis's values.
    """
    specs = [spec_from_entry(entry, list(axes), seed_axis) for entry in entries]
    if isinstance(axes, Mapping):
        for spec in specs:
            validate_levels(spec, list(axes[spec.factor]))
    return specs


# ------------------------------------------------------------------------------ cells
