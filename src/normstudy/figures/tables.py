"""The study's tables as the figures read them, loaded once and shared by every figure."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from normstudy.figures.catalog import TABLE_NAMES
from normstudy.schemas import CURVES_SCHEMA, PROBE_RECORDS_SCHEMA


def empty_frame(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})


CURVE_COLUMNS = ["cell_id", *(f.name for f in CURVES_SCHEMA)]
PROBE_COLUMNS = ["cell_id", *(f.name for f in PROBE_RECORDS_SCHEMA)]


def read_parquet_or(path: Path, columns: list[str] | None) -> pd.DataFrame | None:
    """The table at ``path``; an empty frame with ``columns`` (or None) if it is absent."""
    if path.exists():
        return pq.read_table(path).to_pandas()
    return None if columns is None else empty_frame(columns)


@dataclass
class Tables:
    """The study's tables, loaded once and shared by every figure.

    ``cells``, ``curves``, ``probes`` and ``comparisons`` as :mod:`normstudy.tables` and
    :mod:`normstudy.comparisons` write them; ``ols`` is the optional OLS experiment table
    (kappa, d, method, lr, step, loss, w_0, w_1, w_2). ``axes`` of a cell is a list.
    """

    cells: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=lambda: empty_frame(CURVE_COLUMNS))
    probes: pd.DataFrame = field(default_factory=lambda: empty_frame(PROBE_COLUMNS))
    comparisons: pd.DataFrame | None = None
    ols: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if "axes" in self.cells.columns:
            self.cells = self.cells.assign(axes=[list(a) for a in self.cells["axes"]])

    @classmethod
    def load(cls, tables_dir: str | os.PathLike[str], only: Iterable[str] | None = None) -> Tables:
        """Read ``cells.parquet`` (required) and the other tables found in ``tables_dir``
        (only those named in ``only``, e.g. ``("cells", "curves")``, if given)."""
        tables_dir = Path(tables_dir)
        cells_path = tables_dir / "cells.parquet"
        if not cells_path.exists():
            raise FileNotFoundError(f"no cells table {cells_path}; run the aggregation first")
        wanted = set(TABLE_NAMES if only is None else only)
        unknown = sorted(wanted - set(TABLE_NAMES))
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; valid tables: {list(TABLE_NAMES)}")

        def read(table: str, columns: list[str] | None) -> pd.DataFrame | None:
            if table not in wanted:
                return None if columns is None else empty_frame(columns)
            return read_parquet_or(tables_dir / f"{table}.parquet", columns)

        return cls(
            cells=pq.read_table(cells_path).to_pandas(),
            curves=read("curves", CURVE_COLUMNS),
            probes=read("probes", PROBE_COLUMNS),
            comparisons=read("comparisons", None),
            ols=read("ols", None),
        )

    def study_axes(self) -> dict[str, list[str]]:
        """Each study's grid axes, in grid order."""
        if self.cells.empty:
            return {}
        first = self.cells.groupby("study", sort=True)["axes"].first()
        return {study: list(axes) for study, axes in first.items()}

    def study_cells(self, study: str) -> pd.DataFrame:
        return self.cells[self.cells["study"] == study].reset_index(drop=True)
