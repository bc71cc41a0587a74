"""``normstudy compare`` writes trends.parquet, tuning.parquet and comparisons.md, and the
comparisons page shows the slopes, equivalence verdicts and tuned values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from normstudy import cli
from normstudy.figures import comparison_table

AXES = ["norm", "lr", "depth", "seed"]
ENTRIES = [
    {"trend": "depth", "metric": "final_test_acc", "scale": "log"},
    {"factor": "norm", "reference": "batch", "tune": ["lr"], "tune_metric": "final_val_acc"},
    {"factor": "norm", "reference": "batch", "equivalence_margin": 0.05},
]


def write_inputs(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for norm in ("batch", "layer"):
        for lr in (0.1, 1.0):
            for depth in (2, 4, 8):
                for seed in range(3):
                    acc = 0.5 + 0.05 * np.log2(depth) + rng.normal(0, 0.01)
                    acc += 0.1 * (norm == "batch" and lr == 1.0)
                    rows.append(
                        {"study": "zoo", "norm": norm, "lr": lr, "depth": depth, "seed": seed}
                        | {"status": "ok", "num_classes": 10, "final_test_acc": acc}
                        | {"final_val_acc": acc + rng.normal(0, 0.005)}
                    )
    pd.DataFrame(rows).to_parquet(tmp_path / "cells.parquet")
    plan = {"studies": {"zoo": {"axes": AXES, "comparisons": ENTRIES}}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))


def test_compare_writes_every_table_and_the_page_shows_them(tmp_path):
    write_inputs(tmp_path)
    out = {name: tmp_path / name for name in ("c.parquet", "t.parquet", "u.parquet", "c.md")}
    assert (
        cli.main(
            ["compare", str(tmp_path / "plan.json"), str(tmp_path / "cells.parquet")]
            + [str(out["c.parquet"]), "--trends", str(out["t.parquet"])]
            + ["--tuning", str(out["u.parquet"]), "--summary-md", str(out["c.md"])]
        )
        == 0
    )
    comparisons = pq.read_table(out["c.parquet"]).to_pandas()
    trends = pq.read_table(out["t.parquet"]).to_pandas()
    tuning = pq.read_table(out["u.parquet"]).to_pandas()
    assert len(trends) == 4 and (trends["slope_low"] > 0).all()
    tuned = comparisons[comparisons["tuned_axes"].notna()]
    assert set(tuned["reference_tuned"]) == {'{"lr":1}'}
    assert tuning["chosen"].sum() == 6  # 2 levels x 3 depths
    assert comparisons["equivalence"].notna().sum() == 6
    markdown = out["c.md"].read_text()
    assert "## Trends" in markdown and "final_test_acc along depth (log)" in markdown
    assert "(±0.05; p=" in markdown and '{"lr":1}' in markdown
    html_path = tmp_path / "c.html"
    comparison_table.main(
        [str(out["c.parquet"]), str(html_path), "--trends", str(out["t.parquet"])]
        + ["--tuning", str(out["u.parquet"])]
    )
    page = html_path.read_text()
    for text in ("slope [95% CI]", "equivalence (margin; TOST p; 90% CI)", "✓", "All columns"):
        assert text in page
