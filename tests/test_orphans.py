"""Cells outdated by a version bump: kept, flagged by the tables, status and `normstudy clean`,
and never mixed into the tables (normstudy.orphans, normstudy.tables, normstudy.status)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from normstudy import behaviour, status
from normstudy.cli import main
from normstudy.grid import plan_document, plan_studies
from normstudy.jobs import SlurmQueue
from normstudy.orphans import outdated_cells, unused_cells
from normstudy.schemas import curves_table
from normstudy.tables import MixedVersionsError, aggregate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from aggregate import curve_rows, summary  # noqa: E402  (realistic cell files)

WORKFLOW = {
    "defaults": {"model": "mlp"},
    "studies": {
        "toy": {
            "grid": {"lr": [0.1, 0.2], "norm": ["batch", "batch_noisy"]},
            "demo": {"grid": {"lr": [0.1]}},
        }
    },
}
"""Demo: lr 0.1 with both normalizers (2 cells); paper: also lr 0.2 (4 cells)."""


def plan_at(scale: str) -> dict:
    return plan_document(plan_studies({**WORKFLOW, "scale": scale}))


def finish(results: Path, cell: str, config: dict, index: int = 0) -> None:
    """A finished cell directory, its versions recorded as the training job records them."""
    rng = random.Random(index)
    cell_dir = results / "cells" / cell
    cell_dir.mkdir(parents=True, exist_ok=True)
    record = {**summary(rng, 2), "behaviour_versions": behaviour.parts_used(config)}
    (cell_dir / "summary.json").write_text(json.dumps(record))
    (cell_dir / "config.json").write_text(json.dumps(config))
    pq.write_table(curves_table(curve_rows(rng, 2)), cell_dir / "curves.parquet")


@pytest.fixture
def results(tmp_path) -> Path:
    """Every paper-scale cell finished, with a checkpoint, log and benchmark each; the last
    run's plan is the demo's; config.yaml beside it."""
    results = tmp_path / "results"
    for index, (cell, config) in enumerate(plan_at("paper")["cells"].items()):
        finish(results, cell, config, index)
        for where, suffix in (("checkpoints", ".pt"), ("logs/train", ".log")):
            (results / where).mkdir(parents=True, exist_ok=True)
            (results / where / f"{cell}{suffix}").write_text("x")
        (results / "benchmarks/train").mkdir(parents=True, exist_ok=True)
        (results / "benchmarks/train" / f"{cell}.tsv").write_text("s\n1\n")
    (results / "plan.json").write_text(json.dumps(plan_at("demo")))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(WORKFLOW))
    return results


def bump_noisy_bn(monkeypatch) -> None:
    bumped = behaviour.version_of("norm.batch_noisy") + 1
    monkeypatch.setenv(behaviour.OVERRIDES_VARIABLE, json.dumps({"norm.batch_noisy": bumped}))


NOISY_NOW = behaviour.version_of("norm.batch_noisy")
NOISY_CHANGE = f"v{NOISY_NOW} (now v{NOISY_NOW + 1})"


def noisy_cells(plan: dict) -> set[str]:
    return {cell for cell, config in plan["cells"].items() if config["norm"] == "batch_noisy"}


def test_a_bump_outdates_exactly_the_cells_of_that_part(results, monkeypatch):
    assert outdated_cells(results / "cells") == {}
    old = noisy_cells(plan_at("paper"))
    bump_noisy_bn(monkeypatch)
    outdated = outdated_cells(results / "cells")
    assert set(outdated) == old and len(old) == 2
    assert {tuple(changed) for changed in outdated.values()} == {("norm.batch_noisy",)}
    now = behaviour.version_of("norm.batch_noisy")
    assert all(changed["norm.batch_noisy"] == (now - 1, now) for changed in outdated.values())


def test_the_tables_carry_each_cells_versions(results):
    plan = plan_at("paper")
    aggregate(plan, results / "cells", results / "tables")
    cells = pq.read_table(results / "tables/cells.parquet").to_pylist()
    for row in cells:
        assert json.loads(row["behaviour_versions"]) == behaviour.parts_used(
            plan["cells"][row["cell_id"]]
        )


def test_the_tables_refuse_cells_whose_versions_are_not_current(results):
    """A summary made by another version than its id says is refused, not mixed in."""
    plan = plan_at("paper")
    cell = next(iter(noisy_cells(plan)))
    path = results / "cells" / cell / "summary.json"
    record = json.loads(path.read_text())
    other = behaviour.version_of("norm.batch_noisy") + 1
    record["behaviour_versions"]["norm.batch_noisy"] = other
    path.write_text(json.dumps(record))
    with pytest.raises(MixedVersionsError, match=rf"{cell} was made by norm.batch_noisy v{other}"):
        aggregate(plan, results / "cells", results / "tables")
    assert not (results / "tables/cells.parquet").exists()


def test_mixed_versions_of_one_part_are_named():
    from normstudy.tables import version_problems

    plan = plan_at("demo")
    rows = [
        {"cell_id": cell, "behaviour_versions": json.dumps({**behaviour.parts_used(cfg)})}
        for cell, cfg in plan["cells"].items()
    ]
    assert version_problems(rows, plan) == []
    rows[0]["behaviour_versions"] = json.dumps({"training.loop": 7})
    problems = version_problems(rows, plan)
    assert "part training.loop has versions 1, 7 among the cells" in problems


def test_status_lists_the_outdated_cells(results, monkeypatch):
    stubs = {"local": lambda cells: set(), "slurm": lambda results: SlurmQueue([], "none")}
    assert status.collect(results, **stubs).outdated == {}
    old = noisy_cells(plan_at("paper"))
    bump_noisy_bn(monkeypatch)
    (results / "plan.json").write_text(json.dumps(plan_at("demo")))  # the next run's plan
    report = status.collect(results, **stubs)
    assert set(report.outdated) == old
    text = status.render_text(report)
    assert "2 cell(s) on disk were made by versions no longer current" in text
    for cell in old:
        assert f"outdated  {cell}  norm.batch_noisy {NOISY_CHANGE}" in text
    document = status.report_json(report)
    now = behaviour.version_of("norm.batch_noisy")
    assert document["outdated"][next(iter(old))] == {"norm.batch_noisy": [now - 1, now]}


def clean(results: Path, *extra: str) -> int:
    config = results.parent / "config.yaml"
    return main(["clean", "--results", str(results), "--configfile", str(config), *extra])


def test_clean_keeps_the_cells_of_every_scale(results, capsys):
    """The paper-scale cells are not unused because the last run was a demo."""
    stray = results / "cells" / "digits-mlp-batch-all-s0-0000000000"
    stray.mkdir()
    assert clean(results) == 0
    out = capsys.readouterr().out
    assert "1 cell(s)" in out and "digits-mlp-batch-all-s0-0000000000" in out
    assert clean(results, "--remove") == 0
    assert not stray.exists()
    for cell in plan_at("paper")["cells"]:
        assert (results / "cells" / cell / "summary.json").exists()
        assert (results / "checkpoints" / f"{cell}.pt").exists()


def test_clean_lists_then_removes_the_cells_a_bump_outdated(results, monkeypatch, capsys):
    old_plan = plan_at("paper")
    old = noisy_cells(old_plan)
    bump_noisy_bn(monkeypatch)
    new_plan = plan_at("paper")
    for index, (cell, config) in enumerate(new_plan["cells"].items()):
        if cell not in old_plan["cells"]:
            finish(results, cell, config, index)  # the fix's cells, trained under new ids
    assert clean(results) == 0
    out = capsys.readouterr().out
    assert "2 cell(s)" in out and "nothing removed" in out
    for cell in old:
        assert f"{cell}  made by norm.batch_noisy {NOISY_CHANGE}" in out
        assert (results / "cells" / cell).exists()
    assert clean(results, "--remove") == 0
    for cell in old:
        assert not (results / "cells" / cell).exists()
        assert not (results / "checkpoints" / f"{cell}.pt").exists()
        assert not (results / "logs/train" / f"{cell}.log").exists()
        assert not (results / "benchmarks/train" / f"{cell}.tsv").exists()
    for cell in new_plan["cells"]:
        assert (results / "cells" / cell / "summary.json").exists()
    assert unused_cells(results, set(new_plan["cells"])) == []


def test_clean_refuses_to_remove_while_a_workflow_holds_the_results(results, capsys):
    import subprocess

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from normstudy.runlock import lock_results; "
            f"lock_results({str(results)!r}); print('locked', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        (results / "cells" / "stray-0000000000").mkdir()
        with pytest.raises(SystemExit) as exit_info:
            clean(results, "--remove")
        assert exit_info.value.code == 2
        assert (results / "cells" / "stray-0000000000").exists()
        assert "nothing removed" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
