"""Local faults: damaged outputs, caches and checkpoints, two workflows at once, a full disk.

Each damaged file must be detected and named, then rebuilt or refused, never used.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_workflow import REPO, SNAKEMAKE, write_config

from normstudy import finished
from normstudy.config import resolve_cell_config
from normstudy.datacache import build_cache, load_cache
from normstudy.grid import plan_document, plan_studies
from normstudy.io import write_json_atomic, write_parquet_atomic
from normstudy.tables import UnreadableCellError, aggregate
from normstudy.train import train_cell

CELL = {"model": "mlp", "depth": 1, "width": 16, "epochs": 2, "batch_size": 32}
STUDY = {
    "scale": "demo",
    "defaults": CELL,
    "studies": {"toy": {"grid": {"seed": [0, 1]}}},
}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, "-m", "normstudy.cli", *args], capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="module")
def finished_cells(tmp_path_factory):
    """Two trained cells of one study and the plan the workflow would hand to ``aggregate``."""
    root = tmp_path_factory.mktemp("cells")
    plan = plan_document(plan_studies(STUDY))
    for cell, config in plan["cells"].items():
        train_cell(config, root / "cells" / cell, threads=1)
    return root, plan


def copy_cells(finished_cells, tmp_path) -> tuple[Path, dict, str]:
    import shutil

    root, plan = finished_cells
    cells = tmp_path / "cells"
    shutil.copytree(root / "cells", cells)
    return cells, plan, sorted(plan["cells"])[0]


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        ("truncate", "summary.json", "cannot read"),
        ("garbage", "summary.json", "cannot read"),
        ("empty_object", "summary.json", "lacks"),
        ("truncate", "curves.parquet", "cannot read"),
        ("garbage", "probes.parquet", "cannot read"),
    ],
)
def test_a_damaged_cell_output_is_named_and_no_table_is_written(
    finished_cells, tmp_path, damage, file, message
):
    cells, plan, cell = copy_cells(finished_cells, tmp_path)
    path = cells / cell / file
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage\xff" * 10)
    else:
        path.write_text("{}")
    with pytest.raises(UnreadableCellError) as error:
        aggregate(plan, cells, tmp_path / "tables")
    assert cell in str(error.value) and file in str(error.value) and message in str(error.value)
    assert "delete the cell directory" in str(error.value)
    assert not (tmp_path / "tables").exists()

    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    result = cli("aggregate", str(plan_path), str(cells), str(tmp_path / "tables"))
    assert result.returncode == 1
    assert f"cell {cell}" in result.stderr and file in result.stderr
    assert not (tmp_path / "tables").exists()


def test_intact_cells_aggregate(finished_cells, tmp_path):
    cells, plan, _ = copy_cells(finished_cells, tmp_path)
    assert aggregate(plan, cells, tmp_path / "tables") == {"cells": 2, "unique_cells": 2}


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.pt"
    build_cache(resolve_cell_config(CELL), path)
    return path


def damage_cache(path: Path, damage: str) -> None:
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(b"not a tensor file")
    elif damage == "same_size":
        path.write_bytes(b"\0" * path.stat().st_size)
    elif damage == "no_test":
        payload = torch.load(path, weights_only=True)
        del payload["test_x"]
        torch.save(payload, path)
    elif damage == "altered":
        payload = torch.load(path, weights_only=True)
        payload["train_y"][0] = (payload["train_y"][0] + 1) % 10
        torch.save(payload, path)
    elif damage == "deleted":
        path.unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "is unreadable"),
        ("garbage", "is unreadable"),
        ("no_test", "missing test_x"),
        ("altered", "do not match the digest"),
        ("deleted", "is missing"),
    ],
)
def test_a_damaged_data_cache_is_rebuilt_by_the_training_job(data_cache, tmp_path, damage, message):
    """Damaged after planning (or outside the workflow): the job says so, rebuilds the
    cache and trains on the same data as with the intact cache."""
    reference = train_cell(CELL, tmp_path / "reference", data_cache=data_cache, threads=1)
    path = tmp_path / "data" / "digits.pt"
    path.parent.mkdir()
    path.write_bytes(data_cache.read_bytes())
    damage_cache(path, damage)
    result = cli(
        "train",
        "--json",
        json.dumps(CELL),
        str(tmp_path / "cell"),
        "--data-cache",
        str(path),
        "--threads",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert message in result.stderr and str(path) in result.stderr and "rebuilding" in result.stderr
    summary = json.loads((tmp_path / "cell" / "summary.json").read_text())
    assert summary["final"] == reference["final"]
    assert summary["data"] == reference["data"]
    assert torch.load(path, weights_only=True)["meta"]["digest"] == reference["data"]["digest"]
    assert load_cache(path, resolve_cell_config(CELL)) is not None


def test_a_truncated_checkpoint_is_reported_and_training_starts_over(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint.pt"
    train_cell(
        {**CELL, "epochs": 3}, tmp_path / "first", checkpoint=checkpoint, keep_checkpoint=True
    )
    checkpoint.write_bytes(checkpoint.read_bytes()[:-200])
    summary = train_cell({**CELL, "epochs": 3}, tmp_path / "second", checkpoint=checkpoint)
    assert summary["resumed"] == 0
    assert str(checkpoint) in capsys.readouterr().err
    log = (tmp_path / "second" / "train.log").read_text()
    assert "unreadable" in log and "starts over" in log
    reference = json.loads((tmp_path / "first" / "summary.json").read_text())
    assert summary["final"] == reference["final"]


def test_a_finished_copy_restores_the_same_outputs_without_training(tmp_path):
    copy_dir = tmp_path / "checkpoints" / "cell.finished"
    first = train_cell(CELL, tmp_path / "a", finished_copy=copy_dir)
    assert sorted(p.name for p in copy_dir.iterdir()) == sorted(
        [*finished.OUTPUT_FILES, finished.STAMP]
    )
    again = train_cell(CELL, tmp_path / "b", finished_copy=copy_dir)
    assert again == first
    for name in finished.OUTPUT_FILES:
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    assert "not trained again" in (tmp_path / "b" / "train.log").read_text()


def test_a_finished_copy_of_another_config_or_code_is_not_used(tmp_path, monkeypatch):
    copy_dir = tmp_path / "cell.finished"
    train_cell(CELL, tmp_path / "a", finished_copy=copy_dir)
    other = train_cell({**CELL, "seed": 3}, tmp_path / "b", finished_copy=copy_dir)
    assert "not trained again" not in (tmp_path / "b" / "train.log").read_text()
    assert other["seed"] == 3
    monkeypatch.setattr(finished, "code_fingerprint", lambda: "edited code")
    train_cell({**CELL, "seed": 3}, tmp_path / "c", finished_copy=copy_dir)
    assert "not trained again" not in (tmp_path / "c" / "train.log").read_text()


def test_a_damaged_finished_copy_is_reported_and_the_cell_trains(tmp_path, capsys):
    copy_dir = tmp_path / "cell.finished"
    train_cell(CELL, tmp_path / "a", finished_copy=copy_dir)
    (copy_dir / "curves.parquet").write_bytes(b"PAR1 damaged")
    train_cell(CELL, tmp_path / "b", finished_copy=copy_dir)
    log = (tmp_path / "b" / "train.log").read_text()
    assert "damaged" in log and "not trained again" not in log
    assert str(copy_dir) in capsys.readouterr().err
    assert pq.read_table(tmp_path / "b" / "curves.parquet").num_rows == CELL["epochs"]


def test_a_second_workflow_on_the_same_results_is_refused(tmp_path):
    slow = {"model": "mlp", "depth": 1, "width": 16, "epochs": 15, "batch_size": 8}
    write_config(tmp_path, {"slow": {"grid": {"seed": [0]}}}, defaults=slow)
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
    first = subprocess.Popen(
        [*command, "tables"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    logs = tmp_path / "results" / "logs" / "train"
    deadline = time.monotonic() + 180
    while not (logs.is_dir() and list(logs.iterdir())):
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the first workflow started no training job"
        time.sleep(0.05)
    second = subprocess.run([*command, "tables"], capture_output=True, text=True)
    still_running = first.poll() is None
    output, _ = first.communicate()
    assert still_running, "the first workflow ended before the second started"
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr
    assert first.returncode == 0, output
    cells = pq.read_table(tmp_path / "results" / "tables" / "cells.parquet")
    assert cells.num_rows == 1 and cells.column("epochs_run").to_pylist() == [15]


def test_a_write_that_hits_enospc_leaves_no_file(tmp_path, monkeypatch):
    """The atomic writer removes its partial temporary file; the final name never appears."""
    import pyarrow as pa

    def full_disk(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half of a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq, "write_table", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_parquet_atomic(tmp_path / "table.parquet", pa.table({"a": [1]}))
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(tmp_path / "ok.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["ok.json"]


def mounted_tmpfs(mount: Path, size: str):
    """A tmpfs of ``size`` mounted at ``mount`` while the fixture lasts (skipped where
    mounting is not allowed)."""
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip()})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs: room for a cell's small files, not for its checkpoint."""
    yield from mounted_tmpfs(tmp_path / "full", "2m")


def test_a_full_disk_fails_the_cell_cleanly(small_tmpfs):
    """A model whose checkpoint (weights and momentum, ~4 MB) does not fit on the disk."""
    config = {"model": "mlp", "depth": 2, "width": 512, "epochs": 2, "batch_size": 64}
    outdir = small_tmpfs / "cell"
    result = cli("train", "--json", json.dumps(config), str(outdir), "--threads", "1")
    assert result.returncode == 74, result.stderr
    assert "No space left on device writing checkpoint" in result.stderr
    assert "Traceback" not in result.stderr and "nothing of it is left" in result.stderr
    assert not (outdir / "summary.json").exists()
    assert not (outdir / "checkpoint.pt").exists()
    assert [p.name for p in small_tmpfs.rglob("*.tmp")] == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask(tmp_path, umask):
    """Temporary files are 0600 and keep their mode when renamed; the outputs must not."""
    previous = os.umask(umask)
    try:
        train_cell(CELL, tmp_path / "cell", finished_copy=tmp_path / "copy", threads=1)
        write_parquet_atomic(
            tmp_path / "table.parquet", pq.read_table(tmp_path / "cell" / "curves.parquet")
        )
    finally:
        os.umask(previous)
    files = [
        *(tmp_path / "cell").iterdir(),
        *(tmp_path / "copy").iterdir(),
        tmp_path / "table.parquet",
    ]
    assert len(files) > 8
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert (tmp_path / "copy").stat().st_mode & 0o777 == 0o777 & ~umask


@pytest.fixture(scope="module")
def finished_workflow(tmp_path_factory):
    """A finished run of the workflow (two cells, tables, figures) to copy and damage."""
    workdir = tmp_path_factory.mktemp("finished")
    write_config(workdir, STUDY["studies"], defaults=CELL)
    run_workflow(workdir)
    return workdir


def run_workflow(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2"]
    result = subprocess.run([*command, *args], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def copy_workflow(finished_workflow: Path, tmp_path: Path) -> Path:
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    return workdir


def finished_state(workdir: Path) -> dict[str, int]:
    """Every cell output and table with its modification time (ns)."""
    results = workdir / "results"
    files = [*results.glob("cells/*/*"), *results.glob("tables/*.parquet")]
    return {str(path.relative_to(results)): path.stat().st_mtime_ns for path in files}


@pytest.mark.parametrize("damage", ["truncate", "same_size", "altered", "deleted"])
def test_a_damaged_data_cache_is_rebuilt_and_no_finished_cell_is_lost(
    finished_workflow, tmp_path, damage
):
    """The issue's scenario: overwrite results/data/*.pt after a finished run, run again."""
    workdir = copy_workflow(finished_workflow, tmp_path)
    before = finished_state(workdir)
    assert len([name for name in before if name.endswith("summary.json")]) == 2
    cache = next((workdir / "results" / "data").glob("*.pt"))
    digest = json.loads(cache.with_suffix(".json").read_text())["digest"]
    damage_cache(cache, damage)
    result = run_workflow(workdir)
    output = result.stdout + result.stderr
    if damage != "deleted":
        assert f"data cache results/data/{cache.name} is damaged" in output
        assert (cache.parent / f"{cache.name}.damaged").exists()
    assert "rule train" not in output and "rule tables" not in output
    assert finished_state(workdir) == before
    rebuilt = torch.load(cache, weights_only=True)
    assert rebuilt["meta"]["digest"] == digest
    summaries = [json.loads(p.read_text()) for p in workdir.glob("results/cells/*/summary.json")]
    assert {summary["data"]["digest"] for summary in summaries} == {digest}
    assert "Nothing to be done" in run_workflow(workdir, "-n").stdout


def test_damaged_cell_outputs_are_all_reported_and_the_tables_are_kept(finished_workflow, tmp_path):
    """A truncated summary.json, a truncated curves.parquet and a corrupt probes.parquet in
    two cells: one run reports all three with the repair command, the tables stay; the
    repair command restores the cells from their finished copies and rebuilds the tables."""
    workdir = copy_workflow(finished_workflow, tmp_path)
    before = finished_state(workdir)
    tables = {name: t for name, t in before.items() if name.startswith("tables/")}
    first, second = sorted(p.name for p in (workdir / "results" / "cells").iterdir())
    cells = workdir / "results" / "cells"
    for cell, name in ((first, "summary.json"), (second, "curves.parquet")):
        data = (cells / cell / name).read_bytes()
        (cells / cell / name).write_bytes(data[: len(data) // 2])
    (cells / first / "probes.parquet").write_bytes(b"PAR1 not parquet PAR1")
    result = run_workflow(workdir, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "3 damaged output file(s) in 2 cell(s)" in output, output
    for cell, name in ((first, "summary.json"), (second, "curves.parquet"), (first, "probes")):
        assert f"cell {cell}: cannot read results/cells/{cell}/{name}" in output
    targets = [f"results/cells/{cell}/summary.json" for cell in (first, second)]
    repair = f"snakemake --forcerun {' '.join(targets)}"
    assert repair in output
    assert {n: t for n, t in finished_state(workdir).items() if n.startswith("tables/")} == tables
    assert "Traceback" not in output

    run_workflow(workdir, *repair.split()[1:])
    for cell in (first, second):
        assert "not trained again" in (cells / cell / "train.log").read_text()
    assert finished_state(workdir).keys() == before.keys()
    curves = pq.read_table(workdir / "results" / "tables" / "curves.parquet")
    assert curves.num_rows == 2 * CELL["epochs"]
    assert "Nothing to be done" in run_workflow(workdir, "-n").stdout


def foreign_checkpoint(payload: dict, damage: str) -> dict:
    if damage == "extra_state_key":
        payload["state"]["added_by_a_newer_version"] = 1
    elif damage == "missing_rng":
        del payload["rng"]
    elif damage == "state_not_a_mapping":
        payload["state"] = [1, 2, 3]
    elif damage == "other_shapes":
        name = next(iter(payload["model"]))
        payload["model"] = {**payload["model"], name: torch.zeros(3, 3)}
        payload["model"][name + "_extra"] = torch.zeros(1)
    return payload


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("extra_state_key", "has a layout this code does not know"),
        ("missing_rng", "has a layout this code does not know"),
        ("state_not_a_mapping", "has a layout this code does not know"),
        ("other_shapes", "does not match the model"),
    ],
)
def test_a_foreign_checkpoint_is_reported_set_aside_and_never_fatal(tmp_path, damage, message):
    """A readable checkpoint of the same config but another layout: reported, moved to
    ``.rejected``, and the cell starts over to exactly the result of a clean run."""
    config = {**CELL, "epochs": 3}
    checkpoint = tmp_path / "checkpoint.pt"
    reference = train_cell(
        config, tmp_path / "first", checkpoint=checkpoint, keep_checkpoint=True, threads=1
    )
    payload = torch.load(checkpoint, weights_only=True)
    torch.save(foreign_checkpoint(payload, damage), checkpoint)
    result = cli(
        "train", "--json", json.dumps(config), str(tmp_path / "second"),
        "--checkpoint", str(checkpoint), "--threads", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert f"moved to {checkpoint}.rejected" in result.stderr
    log = (tmp_path / "second" / "train.log").read_text()
    assert message in log and "starts over" in log
    summary = json.loads((tmp_path / "second" / "summary.json").read_text())
    assert summary["resumed"] == 0 and summary["final"] == reference["final"]
    assert (tmp_path / "checkpoint.pt.rejected").exists() and not checkpoint.exists()


@pytest.fixture
def tmpfs_4m(tmp_path):
    """A 4 MiB tmpfs: room for one checkpoint of a 0.3 M parameter MLP (2.5 MB), not two."""
    yield from mounted_tmpfs(tmp_path / "disk", "4m")


def test_a_disk_with_room_for_one_checkpoint_does_not_block_the_cell(tmpfs_4m, tmp_path):
    """Before: the first checkpoint fitted, the second (written beside it) did not; every
    later run resumed from the first and failed again. Now the older one makes room."""
    config = {"model": "mlp", "depth": 2, "width": 512, "epochs": 3, "batch_size": 64}
    reference = train_cell(config, tmp_path / "reference", threads=1)
    outdir = tmpfs_4m / "cell"
    result = cli("train", "--json", json.dumps(config), str(outdir), "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "removed the older one to make room" in result.stderr
    summary = json.loads((outdir / "summary.json").read_text())
    assert summary["final"] == reference["final"]
    assert [p.name for p in tmpfs_4m.rglob("*.tmp")] == []


def test_a_second_workflow_from_another_directory_on_the_same_results_is_refused(tmp_path):
    """Snakemake's lock is per working directory; one absolute `results:` shared by two
    working directories is locked by the workflow itself (flock on results/.normstudy.lock)."""
    import yaml

    slow = {"model": "mlp", "depth": 1, "width": 16, "epochs": 15, "batch_size": 8}
    results = tmp_path / "shared-results"
    commands = []
    for name in ("first", "second"):
        workdir = tmp_path / name
        workdir.mkdir()
        write_config(workdir, {"slow": {"grid": {"seed": [0]}}}, defaults=slow)
        config = yaml.safe_load((workdir / "config.yaml").read_text())
        (workdir / "config.yaml").write_text(yaml.safe_dump({**config, "results": str(results)}))
        commands.append([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-c1"])
    first = subprocess.Popen(
        [*commands[0], "tables"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    logs = results / "logs" / "train"
    deadline = time.monotonic() + 180
    while not (logs.is_dir() and list(logs.iterdir())):
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the first workflow started no training job"
        time.sleep(0.05)
    second = subprocess.run([*commands[1], "tables"], capture_output=True, text=True)
    still_running = first.poll() is None
    output, _ = first.communicate()
    assert still_running, "the first workflow ended before the second started"
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"{results} is in use by another workflow run" in second.stderr
    assert f"run from {tmp_path / 'first'}" in second.stderr
    assert "rule train" not in second.stdout + second.stderr
    assert first.returncode == 0, output
    cells = pq.read_table(results / "tables" / "cells.parquet")
    assert cells.num_rows == 1 and cells.column("epochs_run").to_pylist() == [15]
    again = subprocess.run([*commands[1], "tables"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


def training_processes(workdir: Path) -> list[int]:
    """Pids of `normstudy train` processes running in ``workdir`` (a plain process, or the
    client of a cell forked by the warm server, which runs as long as its cell)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            runs_a_cell = "normstudy.cli train" in command or "normstudy.warm train" in command
            if runs_a_cell and cwd == str(workdir):
                pids.append(int(entry.name))
    return pids


def test_killing_snakemake_stops_its_local_training_jobs(tmp_path):
    """SIGKILL to snakemake alone (not its process group): its training job notices, writes
    its checkpoint and exits 75 instead of training on unseen; the next run resumes it."""
    import signal

    slow = {"model": "mlp", "depth": 1, "width": 16, "epochs": 40, "batch_size": 8}
    write_config(tmp_path, {"slow": {"grid": {"seed": [0]}}}, defaults=slow)
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while not training_processes(tmp_path):
        assert process.poll() is None, "the workflow ended before training"
        assert time.monotonic() < deadline, "no training job started"
        time.sleep(0.05)
    time.sleep(2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while training_processes(tmp_path):
        assert time.monotonic() < deadline, "the training job outlived its snakemake by 30 s"
        time.sleep(0.2)
    cells = tmp_path / "results" / "cells"
    log = next(cells.glob("*/train.log")).read_text()
    assert f"its snakemake (pid {process.pid}) ended" in log and "checkpoint written" in log
    # The job's log, which Snakemake's error names, says so too (it used to be empty).
    job_log = next((tmp_path / "results" / "logs" / "train").glob("*.log")).read_text()
    assert "checkpoint written to" in job_log and "resumes from it" in job_log, job_log
    assert list(cells.glob("*/summary.json")) == []
    run_workflow(tmp_path, "--unlock")
    run_workflow(tmp_path)
    summary = json.loads(next(cells.glob("*/summary.json")).read_text())
    assert summary["resumed"] == 1 and summary["epochs_run"] == 40


@pytest.mark.parametrize("deleted", ["one_cell", "all_cells", "one_file"])
def test_deleted_cell_outputs_are_restored_and_the_tables_rebuilt(
    finished_workflow, tmp_path, deleted
):
    """Before: tables with no cell files behind them were "up to date" (Nothing to be done)."""
    import shutil

    workdir = copy_workflow(finished_workflow, tmp_path)
    cells = workdir / "results" / "cells"
    reference = {p.relative_to(cells): p.read_bytes() for p in cells.glob("*/*.parquet")}
    first = sorted(cells.iterdir())[0]
    if deleted == "one_cell":
        shutil.rmtree(first)
    elif deleted == "all_cells":
        shutil.rmtree(cells)
    else:
        (first / "probes.parquet").unlink()
    result = run_workflow(workdir)
    assert "cell output(s) behind the tables are missing" in result.stderr
    assert {p.relative_to(cells): p.read_bytes() for p in cells.glob("*/*.parquet")} == reference
    assert "not trained again" in (first / "train.log").read_text()
    curves = pq.read_table(workdir / "results" / "tables" / "curves.parquet")
    assert curves.num_rows == 2 * CELL["epochs"]
    assert "Nothing to be done" in run_workflow(workdir, "-n").stdout


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_a_damaged_table_is_rebuilt_before_anything_reads_it(finished_workflow, tmp_path, damage):
    """Before: a truncated cells.parquet was "up to date"; every figure and statistic read it
    and failed, and Snakemake deleted their outputs. Now planning sets it aside, the tables
    job runs again, and the figures are rebuilt; no cell is trained."""
    workdir = copy_workflow(finished_workflow, tmp_path)
    tables = workdir / "results" / "tables"
    reference = pq.read_table(tables / "cells.parquet").to_pandas()
    cells_before = finished_state(workdir)
    if damage == "truncate":
        with open(tables / "cells.parquet", "r+b") as handle:
            handle.truncate(50)
    else:
        (tables / "cells.parquet").write_text("cell,acc\n1,2\n")
    result = run_workflow(workdir)
    assert "table results/tables/cells.parquet is damaged" in result.stderr, result.stderr
    assert "moved to" in result.stderr and (tables / "cells.parquet.damaged").exists()
    rebuilt = pq.read_table(tables / "cells.parquet").to_pandas()
    assert rebuilt.equals(reference)
    assert "rule train:" not in result.stdout
    assert list((workdir / "results" / "figures").glob("*/*.png"))
    after = finished_state(workdir)
    assert {k: v for k, v in after.items() if k.startswith("cells/")} == {
        k: v for k, v in cells_before.items() if k.startswith("cells/")
    }
    assert "Nothing to be done" in run_workflow(workdir, "-n").stdout


def test_parquet_problems_are_told_from_the_files_ends(tmp_path):
    from normstudy.tablecheck import damaged_tables

    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), whole)
    data = whole.read_bytes()
    (tmp_path / "short.parquet").write_bytes(data[:8])
    (tmp_path / "cut.parquet").write_bytes(data[:-3])
    (tmp_path / "footer.parquet").write_bytes(data[:4] + data[-8:])
    (tmp_path / "text.parquet").write_text("not a table at all\n")
    problems = {path.name: problem for path, problem in damaged_tables(tmp_path).items()}
    assert sorted(problems) == ["cut.parquet", "footer.parquet", "short.parquet", "text.parquet"]
    assert "too short" in problems["short.parquet"]
    assert "magic" in problems["cut.parquet"] and "magic" in problems["text.parquet"]
    assert "footer is longer" in problems["footer.parquet"]


def test_a_study_target_restores_any_deleted_output_of_its_cells(finished_workflow, tmp_path):
    """``snakemake study_<name>`` brings back a cell whose curves or probes file is gone,
    not only one whose summary is (Snakemake checks only the files a target asks for)."""
    workdir = copy_workflow(finished_workflow, tmp_path)
    first = sorted((workdir / "results" / "cells").iterdir())[0]
    (first / "curves.parquet").unlink()
    planned = run_workflow(workdir, "-n", "study_toy").stdout
    assert planned.count("rule train:") == 1 and f"cell={first.name}" in planned, planned
    run_workflow(workdir, "study_toy")
    assert (first / "curves.parquet").exists()
    assert "not trained again" in (first / "train.log").read_text()


def test_a_deleted_cache_and_manifest_reruns_its_cells_from_their_finished_copies(
    finished_workflow, tmp_path
):
    """Only when the manifest goes too do the cells re-run: restored, not trained."""
    workdir = copy_workflow(finished_workflow, tmp_path)
    cells = workdir / "results" / "cells"
    reference = {p.relative_to(cells): p.read_bytes() for p in cells.glob("*/*.parquet")}
    for path in (workdir / "results" / "data").iterdir():
        path.unlink()
    run_workflow(workdir)
    assert {p.relative_to(cells): p.read_bytes() for p in cells.glob("*/*.parquet")} == reference
    for log in cells.glob("*/train.log"):
        assert "not trained again" in log.read_text()
    assert len(list((workdir / "results" / "data").glob("*.pt"))) == 1
