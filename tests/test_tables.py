"""Aggregation of cell directories into the study's tables (no torch needed)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from normstudy.grid import plan_document, plan_studies
from normstudy.schemas import curves_table, probe_records_table
from normstudy.tables import PROVENANCE_COLUMNS, CellTables, UnreadableCellError, aggregate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from aggregate import curve_rows, probe_rows, summary  # noqa: E402  (realistic cell files)

STUDIES = {
    "first": {"grid": {"lr": [0.1, 0.2], "seed": [0]}},
    "second": {"grid": {"lr": [0.2, 0.3], "seed": [0]}},
}


def finished_study(root: Path, probes_of: dict[int, int]) -> tuple[dict, Path]:
    """Plan and cell directories; cell ``i`` (plan order) has ``probes_of[i]`` probe records
    (no probes file if absent) and ``i + 2`` epochs of curves."""
    config = {"scale": "demo", "defaults": {"model": "mlp"}, "studies": STUDIES}
    plan = plan_document(plan_studies(config))
    rng = random.Random(0)
    for index, cell in enumerate(plan["cells"]):
        cell_dir = root / cell
        cell_dir.mkdir(parents=True)
        (cell_dir / "summary.json").write_text(json.dumps(summary(rng, index + 2)))
        pq.write_table(curves_table(curve_rows(rng, index + 2)), cell_dir / "curves.parquet")
        if index in probes_of:
            records = probe_records_table(probe_rows(rng, index + 2, probes_of[index]))
            pq.write_table(records, cell_dir / "probes.parquet")
    return plan, root


@pytest.mark.parametrize("compact_every", [1, 2, 256])
def test_each_row_carries_its_own_cell_id(tmp_path, monkeypatch, compact_every):
    """Also when the per-cell tables are merged in chunks (every 1, 2 or 256 cells)."""
    monkeypatch.setattr(CellTables, "COMPACT_EVERY", compact_every)
    plan, cells_dir = finished_study(tmp_path / "cells", probes_of={0: 3, 2: 5})
    counts = aggregate(plan, cells_dir, tmp_path / "tables")
    cell_ids = list(plan["cells"])
    assert counts == {"cells": 4, "unique_cells": 3}
    cells = pq.read_table(tmp_path / "tables/cells.parquet").to_pydict()
    assert list(zip(cells["study"], cells["cell_id"], strict=True)) == [
        ("first", cell_ids[0]),
        ("first", cell_ids[1]),
        ("second", cell_ids[1]),
        ("second", cell_ids[2]),
    ]
    curves = pq.read_table(tmp_path / "tables/curves.parquet").to_pydict()
    assert curves["cell_id"] == [cell_ids[0]] * 2 + [cell_ids[1]] * 3 + [cell_ids[2]] * 4
    for cell in cell_ids:
        own = pq.read_table(cells_dir / cell / "curves.parquet").to_pydict()
        mine = [i for i, c in enumerate(curves["cell_id"]) if c == cell]
        assert [curves["train_loss"][i] for i in mine] == own["train_loss"]
    probes = pq.read_table(tmp_path / "tables/probes.parquet")
    assert probes.column("cell_id").to_pylist() == [cell_ids[0]] * 3 + [cell_ids[2]] * 5
    assert probes.schema.field("cell_id").nullable is False


def test_an_unreadable_cell_file_names_the_cell(tmp_path):
    plan, cells_dir = finished_study(tmp_path / "cells", probes_of={})
    broken = list(plan["cells"])[1]
    (cells_dir / broken / "curves.parquet").write_bytes(b"not parquet")
    with pytest.raises(UnreadableCellError, match=broken):
        aggregate(plan, cells_dir, tmp_path / "tables")
    assert not (tmp_path / "tables" / "curves.parquet").exists()


def test_cells_from_before_provenance_aggregate_with_nulls(tmp_path):
    plan, cells_dir = finished_study(tmp_path / "cells", probes_of={})
    old = list(plan["cells"])[0]
    path = cells_dir / old / "summary.json"
    summary = json.loads(path.read_text())
    del summary["provenance"]
    path.write_text(json.dumps(summary))
    aggregate(plan, cells_dir, tmp_path / "tables")
    table = pq.read_table(tmp_path / "tables/cells.parquet")
    assert [table.schema.field(name).type for name in PROVENANCE_COLUMNS] == [
        kind for kind, _ in PROVENANCE_COLUMNS.values()
    ]
    for row in table.to_pylist():
        recorded = {name: row[name] for name in PROVENANCE_COLUMNS}
        if row["cell_id"] == old:
            assert set(recorded.values()) == {None}, recorded
        else:
            assert recorded["host"] == "node001" and recorded["git_dirty"] is False
            assert recorded["slurm_job_id"] == "4242", recorded


def test_cells_from_before_the_random_subset_role_aggregate_with_zero(tmp_path):
    """Summaries written before freeze ``random`` added the role have no random_subset."""
    plan, cells_dir = finished_study(tmp_path / "cells", probes_of={})
    old = list(plan["cells"])[0]
    path = cells_dir / old / "summary.json"
    summary = json.loads(path.read_text())
    for key in ("parameters", "trainable_parameters"):
        summary[key].pop("random_subset", None)
    path.write_text(json.dumps(summary))
    aggregate(plan, cells_dir, tmp_path / "tables")
    rows = pq.read_table(tmp_path / "tables/cells.parquet").to_pylist()
    old_row = next(row for row in rows if row["cell_id"] == old)
    assert old_row["params_random_subset"] == old_row["trainable_random_subset"] == 0
    assert old_row["params_total"] == sum(summary["parameters"].values())
