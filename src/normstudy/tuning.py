"""Tuned comparisons: each level of a factor at its own best values of some axes.

"Is Batch Norm unique?" (2020), §7 and table 3 compares every normalizer at its own tuned
learning rate, after "identical hyperparameter tuning". For a comparison with
``tune: [lr]``, within every combination of the axes other than the factor, the seed and
the tuned axes, each level of the factor gets the tuned-axis values whose mean
``tune_metric`` over seeds is best (direction-aware; diverged cells enter by the
comparison's policy; ties go to the first combination in sorted order, so the choice is
deterministic). The compared metric is then read at those values: the test metric is
never used to choose (tuning and reporting on the same numbers would bias the result).
Only the combinations that exist are candidates, so a grid that drops points (an axis
varied for one normalizer only) gives that level fewer choices.

Imports no torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from normstudy.comparison_specs import (
    DEFAULT_TUNE_METRIC,
    ComparisonSpec,
    level_text,
    metric_direction,
)
from normstudy.stats_common import (
    condition_json,
    failed_cells,
    frame_arrow,
    grouped_by,
    metric_values,
    schema_of,
)

TUNING_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("study", pa.string(), False, "study name"),
    ("family", pa.string(), False, "Holm family of the tuned comparison"),
    ("factor", pa.string(), False, "the axis compared"),
    ("level", pa.string(), False, "level of the factor"),
    ("condition", pa.string(), False, "values of the untuned other axes (JSON)"),
    ("tuned_axes", pa.string(), False, "the tuned axes (JSON list)"),
    ("tuned_values", pa.string(), False, "one combination of the tuned axes' values (JSON)"),
    ("tune_metric", pa.string(), False, "metric the choice is made on"),
    ("n", pa.int32(), False, "seeds in the mean (diverged cells by the policy)"),
    ("n_diverged", pa.int32(), False, "diverged cells among them"),
    ("mean_tune", pa.float64(), True, "mean of tune_metric over seeds"),
    ("chosen", pa.bool_(), False, "the values this level is compared at"),
]
TUNING_COLUMNS = [name for name, *_ in TUNING_FIELDS]
TUNING_SCHEMA = schema_of(
    TUNING_FIELDS, "every tuned value's mean tune_metric per level (tuning.py)"
)


def tune_metric_of(spec: ComparisonSpec) -> str:
    return spec.tune_metric or DEFAULT_TUNE_METRIC


def best_index(means: np.ndarray, direction: str) -> int | None:
    """Index of the best finite mean (first of ties), None if none is finite."""
    finite = np.isfinite(means)
    if not finite.any():
        return None
    scores = np.where(finite, means if direction == "higher" else -means, -np.inf)
    return int(np.flatnonzero(scores == scores.max())[0])


def level_choices(rows: pd.DataFrame, values: pd.Series, failed: pd.Series, tune: list[str]):
    """(tuned values JSON, n, n_diverged, mean) of every existing tuned combination."""
    out = []
    for key, cells in grouped_by(rows, tune):
        used = values[cells.index].dropna()
        out.append(
            (
                condition_json(tune, key),
                len(used),
                int(failed[cells.index].sum()),
                float(used.mean()) if len(used) else float("nan"),
                cells.index,
            )
        )
    return out


def select_tuned(
    frame: pd.DataFrame,
    spec: ComparisonSpec,
    axes: Sequence[str],
    *,
    study: str,
    family: str,
    seed_axis: str,
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """(the cells at each level's chosen values, {(level text, condition): chosen JSON},
    the tuning table rows) for ``spec`` with ``tune`` on one study's ``frame``."""
    tune = list(spec.tune)
    metric = tune_metric_of(spec)
    direction = metric_direction(metric)
    values = metric_values(frame, metric, spec.diverged)
    failed = failed_cells(frame, metric)
    if (failed & (frame["status"] == "ok")).all():
        raise ValueError(
            f"study {study!r}: tune_metric {metric!r} has no finite value in any ok cell "
            "(no validation split?); declare another tune_metric"
        )
    condition_axes = [a for a in axes if a not in (spec.factor, seed_axis, *tune)]
    keep, chosen, rows = [], {}, []
    for key, group in grouped_by(frame, [*condition_axes, spec.factor]):
        condition = condition_json(condition_axes, key[:-1])
        level = level_text(key[-1])
        choices = level_choices(group, values, failed, tune)
        best = best_index(np.array([c[3] for c in choices]), direction)
        for i, (tuned, n, n_diverged, mean_tune, index) in enumerate(choices):
            rows.append(
                [study, family, spec.factor, level, condition, json.dumps(tune), tuned]
                + [metric, n, n_diverged, mean_tune, i == best]
            )
            if i == best:
                keep.extend(index)
                chosen[(level, condition)] = tuned
    table = pd.DataFrame(rows, columns=TUNING_COLUMNS)
    return frame.loc[sorted(keep)], chosen, table


def tuning_arrow(df: pd.DataFrame) -> pa.Table:
    """``df`` (tuning rows) as a table with :data:`TUNING_SCHEMA`."""
    df = df if len(df) else pd.DataFrame({c: pd.Series(dtype=object) for c in TUNING_COLUMNS})
    return frame_arrow(df, TUNING_SCHEMA)
