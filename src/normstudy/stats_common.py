"""What the comparisons and the rankings share: the cells table as they read it (one
study's rows, checked; the value each cell contributes, with diverged cells entering by
policy; groups by axes; conditions as JSON) and scipy's tests without their warnings.

Imports no torch.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa

from normstudy.comparison_specs import (
    STATUSES,
    ComparisonSpec,
    metric_direction,
    python_value,
    validate_diverged_policy,
)
from normstudy.tables import option_axis_text


def condition_value(value: object) -> object:
    """A condition's value as the config wrote it: integral floats (an integer axis that
    pandas widened to float because another study leaves it empty) back to int."""
    value = python_value(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def condition_json(condition_axes: Sequence[str], key: Sequence[object]) -> str:
    """The values of the other axes as compact JSON with sorted keys."""
    values = {axis: condition_value(v) for axis, v in zip(condition_axes, key, strict=True)}
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def study_cells(cells: pd.DataFrame, study: str | None) -> pd.DataFrame:
    """The rows of one study (all rows when there is no ``study`` column and ``study`` is None)."""
    if "study" not in cells.columns:
        if study is not None:
            raise KeyError(f"cells has no 'study' column to select study {study!r}")
        return cells.reset_index(drop=True)
    studies = sorted(cells["study"].unique())
    if study is None:
        if len(studies) > 1:
            raise ValueError(f"cells hold several studies; pass study= one of: {studies}")
        return cells.reset_index(drop=True)
    if study not in studies:
        raise KeyError(f"no cells for study {study!r}; studies: {', '.join(studies)}")
    return cells[cells["study"] == study].reset_index(drop=True)


def checked_cells(
    cells: pd.DataFrame, study: str | None, axes: Sequence[str], metrics: Sequence[str]
) -> pd.DataFrame:
    """The rows of one study (:func:`study_cells`) once they hold every axis and metric
    column, known statuses only and one cell per combination of the axes."""
    frame = study_cells(cells, study)
    check_columns(frame, [*axes, "status", *metrics])
    check_statuses(frame)
    check_unique_cells(frame, axes)
    return frame


def check_columns(cells: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in cells.columns]
    if missing:
        raise KeyError(
            f"cells lack column(s) {', '.join(missing)}; columns: {', '.join(cells.columns)}"
        )


def check_statuses(cells: pd.DataFrame) -> None:
    unknown = sorted(set(cells["status"]) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown cell status(es) {unknown}; valid statuses: {STATUSES}")


def check_unique_cells(cells: pd.DataFrame, axes: Sequence[str]) -> None:
    """Every combination of axis values must occur once, or the axes list is incomplete."""
    duplicated = cells.duplicated(subset=list(axes), keep=False)
    if duplicated.any():
        example = cells.loc[duplicated, list(axes)].iloc[0].to_dict()
        raise ValueError(
            f"{int(duplicated.sum())} cells share their values of the axes {list(axes)}, "
            f"e.g. {example}; pass every grid axis of the study"
        )


def failed_cells(cells: pd.DataFrame, metric: str) -> pd.Series:
    """True for diverged cells and for cells whose metric is not finite."""
    values = cells[metric].to_numpy(dtype=float)
    return (cells["status"] == "diverged") | ~pd.Series(np.isfinite(values), index=cells.index)


def worst_value(cells: pd.DataFrame, metric: str) -> float:
    """The worst finite value of ``metric`` among the ok cells (NaN if there is none)."""
    values = cells.loc[~failed_cells(cells, metric), metric].to_numpy(dtype=float)
    if values.size == 0:
        return math.nan
    return float(values.min() if metric_direction(metric) == "higher" else values.max())


def metric_values(cells: pd.DataFrame, metric: str, diverged: str) -> pd.Series:
    """The value each cell contributes to the numbers; NaN for an excluded cell.

    A diverged cell becomes the chance accuracy ``1/num_classes`` (``chance``), the
    study's worst observed value (``worst``), or is excluded (``exclude``).
    """
    validate_diverged_policy(diverged, metric)
    failed = failed_cells(cells, metric)
    values = cells[metric].astype(float).where(~failed)
    if diverged == "chance":
        check_columns(cells, ["num_classes"])
        chance = 1.0 / cells["num_classes"].astype(float)
        values = values.where(~failed, chance)
    elif diverged == "worst":
        values = values.where(~failed, worst_value(cells, metric))
    return values


def sorted_levels(values: pd.Series) -> list[object]:
    levels = [python_value(level) for level in pd.unique(values)]
    try:
        return sorted(levels)
    except TypeError:
        return sorted(levels, key=lambda level: (type(level).__name__, str(level)))


def spec_in_table_levels(spec: ComparisonSpec, levels: Sequence[object]) -> ComparisonSpec:
    """``spec`` with its reference and candidates as the cells table holds them.

    An option axis whose values are not all numbers (``norm_options.p: [1, 2, inf]``,
    ``norm_options.centered: [true, false]``) is a text column of ``cells.parquet``
    (:func:`normstudy.tables.option_axis_text`); the spec, read from config.yaml, holds
    the values themselves, which are matched in that text form.
    """
    if not levels or not all(isinstance(level, str) for level in levels):
        return spec
    candidates = None if spec.candidates is None else tuple(map(option_axis_text, spec.candidates))
    return replace(spec, reference=option_axis_text(spec.reference), candidates=candidates)


def grouped_by(frame: pd.DataFrame, axes: Sequence[str]):
    """(key tuple, rows) for every combination of ``axes``; one group with key () if none."""
    if not axes:
        return [((), frame)]
    return [
        (key if isinstance(key, tuple) else (key,), rows)
        for key, rows in frame.groupby(list(axes), sort=True, dropna=False)
    ]


def statistic_and_p(test, *args, **kwargs) -> tuple[float, float]:
    """(statistic, p-value) of a scipy test, NaN if scipy refuses the data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = test(*args, **kwargs)
        except ValueError:
            return math.nan, math.nan
    return float(result.statistic), float(result.pvalue)


Field = tuple[str, pa.DataType, bool, str]
"""A column of a statistics table: name, type, nullable, description."""


def schema_of(fields: Sequence[Field], description: str) -> pa.Schema:
    """The pyarrow schema of a statistics table, each column described."""
    return pa.schema(
        [
            pa.field(name, dtype, nullable=nullable, metadata={"description": text})
            for name, dtype, nullable, text in fields
        ],
        metadata={"description": description},
    )


def frame_arrow(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The columns of ``df`` named by ``schema``, converted to its types (NaN as null in a
    nullable integer column)."""
    arrays = []
    for schema_field in schema:
        column = df[schema_field.name]
        if pa.types.is_floating(schema_field.type):
            column = column.astype(float)
        elif pa.types.is_integer(schema_field.type) and schema_field.nullable:
            column = column.astype("Int64").astype(object).where(column.notna(), None)
        elif pa.types.is_integer(schema_field.type):
            column = column.astype("int64")
        elif pa.types.is_boolean(schema_field.type):
            column = column.astype(bool)
        arrays.append(pa.array(column.tolist(), type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
