"""Multiple comparisons: Holm (1979) step-down adjustment within each family of tests
(one study, factor, reference and metric; comparisons and trends alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm (1979, Scand. J. Stat. 6:65) step-down adjusted p-values; NaN entries stay NaN
    and do not count in m.

    With the m finite p-values sorted, p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is max_{j<=i} min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def holm_within_families(rows: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """A copy of ``rows`` with, for each (p column, adjusted column) of ``pairs``, the
    p-values Holm-adjusted within each ``family`` (comparisons and trends alike)."""
    rows = rows.copy()
    for column, adjusted in pairs:
        rows[adjusted] = np.nan
        for _, family in rows.groupby("family", sort=False):
            rows.loc[family.index, adjusted] = holm(family[column].to_numpy(dtype=float))
    return rows
