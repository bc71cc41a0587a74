"""``snakemake --profile profiles/slurm`` against a real SLURM scheduler (``cluster.py``).

Every run uses the profile as users do, plus ``tests/slurm/profile`` (partition, no
account, ``squeue`` for status, short polling). The scenarios: a grid of several studies
bundled into few SLURM jobs, with one crashing cell, then fixed and re-run; a training
job preempted by SIGTERM; the workflow process killed with SIGKILL and started again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_workflow import REPO, SNAKEMAKE, snakemake, write_config

from normstudy.config import resolve_cell_config
from normstudy.datacache import build_cache
from normstudy.grid import data_key
from normstudy.tables import PROVENANCE_COLUMNS
from normstudy.train import train_cell

HERE = Path(__file__).resolve().parent
PROFILES = ("--profile", str(REPO / "profiles" / "slurm"), "--profile", str(HERE / "profile"))
CORES = ("--cores", "1")
"""As the README says to run the profile: a bundle asks SLURM for the threads of one cell."""
TIMEOUT = 900
TIMING_COLUMNS = ["train_seconds", "eval_seconds", "samples_per_second", "seconds"]
NOT_RESULTS = [*TIMING_COLUMNS, *PROVENANCE_COLUMNS]
"""Columns that differ between two runs of the same cells: timings and where they ran."""
FAST = {"model": "mlp", "depth": 1, "width": 16, "epochs": 2, "batch_size": 32}
GRID = {
    "alpha": {"grid": {"lr": [0.05, 0.1], "seed": [0]}},
    "beta": {"grid": {"width": [8, 16], "seed": [0]}},
    "gamma": {"grid": {"seed": [5]}},
}
"""Three studies, four distinct cells (``alpha`` lr 0.1 is ``beta`` width 16)."""
CRASHING = {"after_finished": 2}
"""The first cell to start after two have finished crashes (``inject/sitecustomize.py``)."""


def workflow_env(cluster, workdir: Path) -> dict[str, str]:
    """The cluster's environment, the worktree's sources and the test-only crash hook."""
    paths = [str(HERE / "inject"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    return {
        **cluster.env,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "NORMSTUDY_TEST_CRASH_FILE": str(workdir / "crash.json"),
    }


def command(workdir: Path, *args: str) -> list[str]:
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *PROFILES, *CORES, *args]


def run_slurm(cluster, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(workdir, *args),
        env=workflow_env(cluster, workdir),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def start_slurm(cluster, workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(workdir, *args),
        env=workflow_env(cluster, workdir),
        stdout=(workdir / "snakemake.out").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def submitted_jobs(output: str) -> list[tuple[str, str]]:
    """(SLURM job id, rule or group) of every job the workflow submitted."""
    found = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/(\w+)/", output)
    return [(job, kind) for job, kind in found]


def jobs_in(cluster, workdir: Path, states: str = "PENDING,RUNNING,COMPLETING") -> list[str]:
    result = cluster.run("squeue", "-h", "-t", states, "-o", "%i %Z")
    return [
        line.split()[0] for line in result.stdout.splitlines() if line.split()[1:] == [str(workdir)]
    ]


def wait_until(condition, message: str, process: subprocess.Popen | None = None, timeout=300):
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{message}: the workflow ended first")
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def train_log(workdir: Path, cell: str) -> str:
    """The cell's train.log; empty if the cell never started."""
    path = workdir / "results" / "cells" / cell / "train.log"
    return path.read_text() if path.exists() else ""


def cells_of(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "results" / "cells").iterdir())


def comparable(path: Path) -> pd.DataFrame:
    table = pq.read_table(path).to_pandas()
    table = table.drop(columns=[c for c in NOT_RESULTS if c in table.columns])
    keys = [c for c in ("study", "cell_id", "epoch") if c in table.columns]
    return table.sort_values(keys).reset_index(drop=True)


def with_data_cache(workdir: Path, config: dict) -> None:
    """Put the dataset cache in place, as ``prepare_data`` would (saves one SLURM job)."""
    resolved = resolve_cell_config(config)
    build_cache(resolved, workdir / "results" / "data" / f"{data_key(resolved)}.pt")


def summary_times(workdir: Path) -> dict[str, int]:
    """Cell -> mtime (ns) of its summary.json, for the cells that have one."""
    return {
        path.parent.name: path.stat().st_mtime_ns
        for path in (workdir / "results" / "cells").glob("*/summary.json")
    }


@pytest.fixture(scope="module")
def grid_runs(slurm_cluster, tmp_path_factory):
    """The grid through SLURM with one cell crashing (one retry), then with the crash fixed."""
    workdir = tmp_path_factory.mktemp("grid")
    write_config(workdir, GRID, defaults=FAST)
    (workdir / "crash.json").write_text(json.dumps(CRASHING))
    first = run_slurm(slurm_cluster, workdir, "tables", "--retries", "1")
    crashed = json.loads((workdir / "crash.json").read_text())["cell"]
    after_first = {
        "summaries": summary_times(workdir),
        "train_logs": {cell: train_log(workdir, cell) for cell in cells_of(workdir)},
        "crash_log": (workdir / "results" / "logs" / "train" / f"{crashed}.log").read_text(),
    }
    (workdir / "crash.json").unlink()
    second = run_slurm(slurm_cluster, workdir, "tables")
    local = tmp_path_factory.mktemp("local")
    write_config(local, GRID, defaults=FAST)
    snakemake(local, "tables")
    return {
        "workdir": workdir,
        "local": local,
        "crashed": crashed,
        "first": first,
        "after_first": after_first,
        "second": second,
    }


def test_a_crashing_cell_fails_alone_and_is_reported_with_its_log(grid_runs):
    """The crash fails the cell's bundle; its finished cells keep their outputs
    (keep-incomplete) and, when the retry runs the whole bundle again, are restored from
    their finished copies instead of training again."""
    first, crashed = grid_runs["first"], grid_runs["crashed"]
    after_first = grid_runs["after_first"]
    output = first.stdout + first.stderr
    assert first.returncode != 0
    log = f"results/logs/train/{crashed}.log"
    assert log in output and "injected crash" in output
    assert "injected crash" in after_first["crash_log"]
    logs = after_first["train_logs"]
    assert logs[crashed].count(" start ") == 2  # the first attempt and the retry
    # Snakemake runs a bundle's cells one by one and stops the bundle at its first
    # failure (there is no --keep-going inside a group job): a cell scheduled after the
    # crash has not started.
    started = {cell for cell, text in logs.items() if " start " in text} - {crashed}
    assert len(started) == CRASHING["after_finished"], logs
    assert set(after_first["summaries"]) == started, logs
    for cell in started:
        assert logs[cell].count(" start ") == 1 and "not trained again" in logs[cell], logs[cell]


def test_rerun_after_the_fix_trains_only_the_crashed_cell(grid_runs):
    second, workdir, crashed = grid_runs["second"], grid_runs["workdir"], grid_runs["crashed"]
    assert second.returncode == 0, second.stdout + second.stderr
    before = grid_runs["after_first"]["summaries"]
    after = summary_times(workdir)
    assert {cell: after[cell] for cell in before} == before, "a finished cell was re-run"
    assert train_log(workdir, crashed).count(" start ") == 3
    for cell in set(cells_of(workdir)) - set(before) - {crashed}:
        assert train_log(workdir, cell).count(" start ") == 1


def test_slurm_tables_equal_a_local_run(grid_runs):
    workdir, local = grid_runs["workdir"], grid_runs["local"]
    for table in ("cells.parquet", "curves.parquet", "probes.parquet"):
        slurm = comparable(workdir / "results" / "tables" / table)
        reference = comparable(local / "results" / "tables" / table)
        pd.testing.assert_frame_equal(slurm, reference)
    cells = pq.read_table(workdir / "results" / "tables" / "cells.parquet").to_pandas()
    assert sorted(set(cells["study"])) == ["alpha", "beta", "gamma"] and len(cells) == 5
    assert cells["slurm_job_id"].notna().all(), cells["slurm_job_id"]


def test_the_profile_bundles_cells_into_few_slurm_jobs(grid_runs, slurm_cluster):
    second = grid_runs["second"]
    jobs = submitted_jobs(second.stdout + second.stderr)
    train_jobs = [job for job, kind in jobs if kind == "group_train_train"]
    cells = len(cells_of(grid_runs["workdir"]))
    assert cells == 4 and len(train_jobs) == 1, jobs
    records = {record["JobId"]: record for record in slurm_cluster.completed_jobs()}
    assert all(records.get(job, {}).get("JobState") == "COMPLETED" for job, _ in jobs), (
        jobs,
        records,
    )
    # --cores 1: the bundle of several independent cells asks for one CPU, not one per cell
    # (or the submitting machine's cores, which profiles/default's `cores: all` would give).
    assert [records[job]["ProcCnt"] for job in train_jobs] == ["1"], records


SLOW = {"model": "mlp", "depth": 1, "width": 16, "epochs": 40, "batch_size": 8}


def test_a_preempted_training_job_resumes_from_its_checkpoint(slurm_cluster, tmp_path):
    """SIGTERM to the running job (as before a time limit or a preemption): the cell
    checkpoints and exits 75, the profile's ``retries`` resubmit it, and it resumes to
    the result of an uninterrupted run."""
    write_config(tmp_path, {"slow": {"grid": {"seed": [0]}}}, defaults=SLOW)
    with_data_cache(tmp_path, SLOW)
    process = start_slurm(slurm_cluster, tmp_path, "study_slow")
    checkpoints = tmp_path / "results" / "checkpoints"
    wait_until(
        lambda: checkpoints.is_dir() and list(checkpoints.glob("*.pt")),
        "no checkpoint appeared",
        process,
    )
    (job,) = jobs_in(slurm_cluster, tmp_path, "RUNNING")
    slurm_cluster.run("scancel", "--signal=TERM", job)
    assert process.wait(timeout=TIMEOUT) == 0, (tmp_path / "snakemake.out").read_text()
    (cell,) = cells_of(tmp_path)
    log = train_log(tmp_path, cell)
    assert "signal 15" in log and "exiting with status 75" in log and "resumed from" in log
    summary = json.loads((tmp_path / "results" / "cells" / cell / "summary.json").read_text())
    assert summary["resumed"] == 1 and summary["epochs_run"] == SLOW["epochs"]
    data = next((tmp_path / "results" / "data").glob("*.pt"))
    reference = train_cell(SLOW, tmp_path / "reference", threads=1, data_cache=data)
    assert summary["final"] == reference["final"]
    pd.testing.assert_frame_equal(
        comparable(tmp_path / "results" / "cells" / cell / "curves.parquet"),
        comparable(tmp_path / "reference" / "curves.parquet"),
    )


MEDIUM = {"model": "mlp", "depth": 1, "width": 16, "epochs": 12, "batch_size": 8}


def test_the_workflow_killed_and_started_again_resumes(slurm_cluster, tmp_path):
    """SIGKILL to the Snakemake process mid-run. Its SLURM job runs on; the documented
    recovery cancels it (the cell running then checkpoints), unlocks and runs again:
    finished cells are not re-run (the job step recorded them as complete), the
    interrupted one resumes, the tables are whole."""
    write_config(tmp_path, {"three": {"grid": {"seed": [0, 1, 2]}}}, defaults=MEDIUM)
    with_data_cache(tmp_path, MEDIUM)
    process = start_slurm(slurm_cluster, tmp_path, "tables")
    cells_dir = tmp_path / "results" / "cells"
    wait_until(
        lambda: (
            cells_dir.is_dir()
            and list(cells_dir.glob("*/summary.json"))
            and list((tmp_path / "results" / "checkpoints").glob("*.pt"))
        ),
        "no cell finished while another was running",
        process,
    )
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for job in jobs_in(slurm_cluster, tmp_path):
        slurm_cluster.run("scancel", job)
    wait_until(lambda: not jobs_in(slurm_cluster, tmp_path), "the cancelled job did not end")
    finished_before = summary_times(tmp_path)
    unlock = run_slurm(slurm_cluster, tmp_path, "--unlock")
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    again = run_slurm(slurm_cluster, tmp_path, "tables")
    assert again.returncode == 0, again.stdout + again.stderr
    cells = pq.read_table(tmp_path / "results" / "tables" / "cells.parquet").to_pandas()
    assert len(cells) == 3 and set(cells["epochs_run"]) == {MEDIUM["epochs"]}
    after = summary_times(tmp_path)
    assert finished_before and len(finished_before) < 3, finished_before
    assert {cell: after[cell] for cell in finished_before} == finished_before
    logs = {cell: train_log(tmp_path, cell) for cell in cells_of(tmp_path)}
    assert all(log.count(" start ") == 1 for log in logs.values()), logs
    interrupted = [cell for cell, log in logs.items() if "signal 15" in log]
    assert interrupted, logs
    data = next((tmp_path / "results" / "data").glob("*.pt"))
    for cell in interrupted:
        assert "resumed from" in logs[cell]
        seed = json.loads((cells_dir / cell / "config.json").read_text())["seed"]
        reference = train_cell(
            {**MEDIUM, "seed": seed}, tmp_path / "ref" / cell, threads=1, data_cache=data
        )
        summary = json.loads((cells_dir / cell / "summary.json").read_text())
        assert summary["final"] == reference["final"], cell


def test_dry_run_keeps_gpu_requests_under_the_slurm_profile(tmp_path):
    """``profiles/default`` is also applied (as the workflow profile) under
    ``--profile profiles/slurm`` and wins; it must not cap the training jobs' GPUs."""
    write_config(tmp_path, GRID, defaults=FAST)
    config = (tmp_path / "config.yaml").read_text().replace("gpu: 0", "gpu: 1")
    (tmp_path / "config.yaml").write_text(config)
    result = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", *PROFILES[:2]],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    train_resources = re.findall(r"rule train:.*?resources: ([^\n]*)", result.stdout, re.DOTALL)
    assert len(train_resources) == 4
    assert all("gpu=1" in line for line in train_resources), train_resources
