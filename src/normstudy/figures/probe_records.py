"""Probe records as the figures read them: labels, time in epochs, last records."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from normstudy.figures.tables import Tables

MODEL = "model"


def probe_labels(probes: pd.DataFrame, key: str) -> list[str]:
    """The probe labels (``probe`` column) whose records include ``key``: a probe can be
    scheduled twice under different labels (e.g. ``hessian`` and ``hessian_eval``)."""
    return sorted(probes.loc[probes["key"] == key, "probe"].unique())


def steps_per_epoch(curves: pd.DataFrame) -> pd.Series:
    """Optimizer steps per epoch of each cell (cell_id index), from its first curve row."""
    first = curves[curves["epoch"] > 0].sort_values("epoch").groupby("cell_id").first()
    return (first["step"] / first["epoch"]).rename("steps_per_epoch")


def timed_records(tables: Tables, labels: Sequence[str]) -> pd.DataFrame:
    """The records of the probe ``labels`` with ``time`` in (fractional) epochs, from the
    step and the cell's steps per epoch (the epoch if the cell has no curves), one record
    per (cell, probe, layer, key, step) (a probe due at the last epoch and at the end
    measures the same state twice), failures and non-finite values left out."""
    records = tables.probes[tables.probes["probe"].isin(labels)]
    records = records[(records["key"] != "failed") & np.isfinite(records["value"].astype(float))]
    records = records.drop_duplicates(
        ["cell_id", "probe", "layer", "key", "step"], keep="last"
    ).copy()
    per_epoch = records["cell_id"].map(steps_per_epoch(tables.curves))
    records["time"] = (records["step"] / per_epoch).where(per_epoch > 0, records["epoch"])
    return records


def last_records(records: pd.DataFrame) -> pd.DataFrame:
    """Each cell's records at its last probed step."""
    last = records.groupby("cell_id")["step"].transform("max")
    return records[records["step"] == last]
