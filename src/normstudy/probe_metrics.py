"""Cell metrics read from a cell's probe records: the values a paper compares at the end
of training that are measured by a probe rather than by evaluation.

Morwani (2020) §4 compares the Lp normalizations by "the final eigenvalues and distance
from initialization" as well as accuracy; they become columns of ``cells.parquet`` so
that a study's ``comparisons:`` can test them like accuracies (null where the cell ran no
such probe).
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

PROBE_METRICS: dict[str, tuple[str, str]] = {
    "final_distance_from_init": ("distance_from_init", "norms probe: ||theta - theta_0||"),
    "final_hessian_top_eigenvalue": ("lambda_1", "hessian probe: the largest eigenvalue"),
}
"""Column -> (the whole-model record key it reads at the probe's last step, description)."""


def final_value(records: pa.Table, key: str) -> float | None:
    """The whole-model record ``key`` at the last step it was recorded (None if never)."""
    mask = pc.and_(pc.equal(records["key"], key), pc.equal(records["layer"], "model"))
    rows = records.filter(mask)
    if rows.num_rows == 0:
        return None
    steps = rows["step"].to_pylist()
    last = max(range(len(steps)), key=lambda i: (steps[i], i))
    value = rows["value"][last].as_py()
    return math.nan if value is None else float(value)


def probe_metrics(records: pa.Table | None) -> dict[str, float | None]:
    """Every :data:`PROBE_METRICS` column for one cell's probe records."""
    if records is None:
        return dict.fromkeys(PROBE_METRICS)
    return {column: final_value(records, key) for column, (key, _) in PROBE_METRICS.items()}
