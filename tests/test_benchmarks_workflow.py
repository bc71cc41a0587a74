"""The workflow-scale and aggregation benchmarks run and produce numbers (quick modes).

No timing thresholds: speed goals live in BENCHMARKS.md, measured with the full modes.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import aggregate  # noqa: E402
import workflow_scale  # noqa: E402


def positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_workflow_scale_quick_mode_measures_floor_and_project(capsys):
    results = workflow_scale.main(["--quick"])
    assert list(results) == list(workflow_scale.QUICK_SIZES)
    for result in results.values():
        for variant in ("floor", "project"):
            for kind in ("dry_run", "job_start"):
                run = result[variant][kind]
                assert positive(run.seconds) and positive(run.cpu_seconds)
                assert positive(run.max_rss_mb)
    printed = capsys.readouterr().out
    assert f"{workflow_scale.QUICK_SIZES[0]:>7} |" in printed


def test_aggregate_quick_mode_builds_every_table(capsys):
    results = aggregate.main(["--quick"])
    assert [r.cells for r in results] == list(aggregate.QUICK_CELLS)
    for result in results:
        assert result.table_rows["cells"] == result.cells
        assert result.table_rows["curves"] == result.cells * 20
        assert result.table_rows["probes"] == result.cells * 200
        assert positive(result.seconds) and positive(result.max_rss_mb)
        assert positive(result.table_mb)
    assert "RSS grows" in capsys.readouterr().out
