"""``snakemake --profile slurm`` against a real SLURM scheduler (``cluster.py``), as a user
types it: ``slurm`` is the user's own profile in Snakemake's user config directory
(``$XDG_CONFIG_HOME/snakemake/slurm``), written by ``normstudy slurm-profile`` on the test
cluster; the test-only additions are a shorter delay before the first status check and a
shorter latency wait. Everything else (GPUs, CPUs, time limits, partitions) comes from the
workflow.

The scenarios: a grid of several studies with one crashing cell, then fixed and re-run; a
training job preempted by SIGTERM; a cell that needs several times its partition's time
limit and finishes through a chain of jobs; the workflow process killed with SIGKILL and
started again; plans that the preflight refuses.
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
import yaml
from cluster import SHORT_MINUTES
from test_workflow import REPO, SNAKEMAKE, snakemake, write_config

from normstudy.config import resolve_cell_config
from normstudy.datacache import build_cache
from normstudy.grid import data_key
from normstudy.tables import PROCESS_COLUMNS, PROVENANCE_COLUMNS
from normstudy.train import train_cell

HERE = Path(__file__).resolve().parent
NORMSTUDY = str(Path(SNAKEMAKE).with_name("normstudy"))
TIMEOUT = 900
TIMING_COLUMNS = ["train_seconds", "eval_seconds", "samples_per_second", "seconds"]
NOT_RESULTS = [*TIMING_COLUMNS, *PROCESS_COLUMNS, *PROVENANCE_COLUMNS]
"""Columns that differ between two runs of the same cells: timings, usage, where they ran."""
FAST = {"model": "mlp", "depth": 1, "width": 16, "epochs": 2, "batch_size": 32}
GRID = {
    "alpha": {"grid": {"lr": [0.05, 0.1], "seed": [0]}},
    "beta": {"grid": {"width": [8, 16], "seed": [0]}},
    "gamma": {"grid": {"seed": [5]}},
}
"""Three studies, four distinct cells (``alpha`` lr 0.1 is ``beta`` width 16)."""
CRASHING = {"after_finished": 2}
"""The first cell to start after two have finished crashes (``inject/sitecustomize.py``)."""
SLURM_SETTINGS = {"threads": 1, "cpu_partition": "cpu", "retries": 1, "startup_minutes": 1}
"""The study's ``slurm:`` block on the test cluster: one CPU per job (the node has two),
CPU-only jobs on ``cpu`` (every partition of the one-node cluster has its GPUs), one retry
for faults."""


def write_study(workdir: Path, studies: dict, defaults: dict, **slurm) -> None:
    """``config.yaml`` of a small study with its ``slurm:`` block."""
    write_config(workdir, studies, defaults=defaults)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["slurm"] = {**SLURM_SETTINGS, **slurm}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def user_config(slurm_cluster, tmp_path_factory) -> Path:
    """A Snakemake user config directory holding the profile ``slurm`` that
    ``normstudy slurm-profile`` writes on this cluster."""
    home = tmp_path_factory.mktemp("xdg")
    env = {**slurm_cluster.env, "XDG_CONFIG_HOME": str(home)}
    result = subprocess.run(
        [NORMSTUDY, "slurm-profile", "--partition", "gpu"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    profile = home / "snakemake" / "slurm" / "config.yaml"
    text = profile.read_text()
    assert "executor: slurm" in text and 'slurm_partition: "gpu"' in text, text
    # No slurmdbd on the test cluster: the writer must have chosen squeue for job status.
    assert "slurm-status-command: squeue" in text, text
    profile.write_text(
        text.replace("latency-wait: 60", "latency-wait: 5")
        + "slurm-init-seconds-before-status-checks: 2   # test-only: poll sooner\n"
    )
    return home


def workflow_env(cluster, workdir: Path, user_config: Path) -> dict[str, str]:
    """The cluster's environment, the user's profile, the worktree's sources and the
    test-only crash hook."""
    paths = [str(HERE / "inject"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    return {
        **cluster.env,
        "XDG_CONFIG_HOME": str(user_config),
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "NORMSTUDY_TEST_CRASH_FILE": str(workdir / "crash.json"),
    }


def command(workdir: Path, *args: str) -> list[str]:
    """``snakemake --profile slurm`` as typed, on the workdir's config."""
    return [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--profile",
        "slurm",
        *args,
    ]


def run_slurm(cluster, user_config, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(workdir, *args),
        env=workflow_env(cluster, workdir, user_config),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def start_slurm(cluster, user_config, workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(workdir, *args),
        env=workflow_env(cluster, workdir, user_config),
        stdout=(workdir / "snakemake.out").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def submitted_jobs(output: str) -> list[tuple[str, str]]:
    """(SLURM job id, rule or group) of every job the workflow submitted."""
    found = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/(\w+)/", output)
    return [(job, kind) for job, kind in found]


def job_record(cluster, job: str) -> dict[str, str]:
    """``scontrol show job`` of a job, field by field."""
    return dict(re.findall(r"(\w+)=(\S+)", cluster.run("scontrol", "show", "job", job).stdout))


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


def start_reference_run(workdir: Path, config: dict) -> subprocess.Popen:
    """The same config trained in one go, from the same data cache, in the background."""
    data = next((workdir / "results" / "data").glob("*.pt"))
    command = [NORMSTUDY, "train", "--json", json.dumps(config), str(workdir / "reference")]
    command += ["--data-cache", str(data), "--threads", "1"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def assert_equals_an_uninterrupted_run(
    workdir: Path, cell: str, config: dict, summary: dict, reference_run=None
):
    """The cell's final metrics and curves equal those of the same config trained in one
    go, from the same data cache (here, or by ``reference_run``)."""
    if reference_run is None:
        data = next((workdir / "results" / "data").glob("*.pt"))
        reference = train_cell(config, workdir / "reference", threads=1, data_cache=data)
    else:
        _, errors = reference_run.communicate(timeout=TIMEOUT)
        assert reference_run.returncode == 0, errors
        reference = json.loads((workdir / "reference" / "summary.json").read_text())
    assert summary["final"] == reference["final"]
    pd.testing.assert_frame_equal(
        comparable(workdir / "results" / "cells" / cell / "curves.parquet"),
        comparable(workdir / "reference" / "curves.parquet"),
    )


def summary_times(workdir: Path) -> dict[str, int]:
    """Cell -> mtime (ns) of its summary.json, for the cells that have one."""
    return {
        path.parent.name: path.stat().st_mtime_ns
        for path in (workdir / "results" / "cells").glob("*/summary.json")
    }


@pytest.fixture(scope="module")
def grid_runs(slurm_cluster, user_config, tmp_path_factory):
    """The grid through SLURM with one cell crashing (on its retry too), then with the
    crash fixed; and the same grid run locally."""
    workdir = tmp_path_factory.mktemp("grid")
    write_study(workdir, GRID, FAST)
    (workdir / "crash.json").write_text(json.dumps(CRASHING))
    first = run_slurm(slurm_cluster, user_config, workdir, "tables")
    crashed = json.loads((workdir / "crash.json").read_text())["cell"]
    after_first = {
        "summaries": summary_times(workdir),
        "train_logs": {cell: train_log(workdir, cell) for cell in cells_of(workdir)},
        "crash_log": (workdir / "results" / "logs" / "train" / f"{crashed}.log").read_text(),
    }
    (workdir / "crash.json").unlink()
    second = run_slurm(slurm_cluster, user_config, workdir, "tables")
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
    """Each cell is its own SLURM job: the crash costs its cell only (retried once, as
    ``slurm.retries: 1`` says); every other cell finishes in the same run."""
    first, crashed = grid_runs["first"], grid_runs["crashed"]
    after_first = grid_runs["after_first"]
    output = first.stdout + first.stderr
    assert first.returncode != 0
    log = f"results/logs/train/{crashed}.log"
    assert log in output and "injected crash" in output
    assert "injected crash" in after_first["crash_log"]
    logs = after_first["train_logs"]
    assert logs[crashed].count(" start ") == 2  # the first attempt and the retry
    others = set(logs) - {crashed}
    assert len(others) == 3 and set(after_first["summaries"]) == others, logs
    assert all(logs[cell].count(" start ") == 1 for cell in others), logs


def test_rerun_after_the_fix_trains_only_the_crashed_cell(grid_runs):
    second, workdir, crashed = grid_runs["second"], grid_runs["workdir"], grid_runs["crashed"]
    assert second.returncode == 0, second.stdout + second.stderr
    before = grid_runs["after_first"]["summaries"]
    after = summary_times(workdir)
    assert {cell: after[cell] for cell in before} == before, "a finished cell was re-run"
    assert train_log(workdir, crashed).count(" start ") == 3


def test_slurm_tables_equal_a_local_run(grid_runs):
    workdir, local = grid_runs["workdir"], grid_runs["local"]
    for table in ("cells.parquet", "curves.parquet", "probes.parquet"):
        slurm = comparable(workdir / "results" / "tables" / table)
        reference = comparable(local / "results" / "tables" / table)
        pd.testing.assert_frame_equal(slurm, reference)
    cells = pq.read_table(workdir / "results" / "tables" / "cells.parquet").to_pandas()
    assert sorted(set(cells["study"])) == ["alpha", "beta", "gamma"] and len(cells) == 5
    assert cells["slurm_job_id"].notna().all(), cells["slurm_job_id"]


def test_each_training_job_gets_one_gpu_and_the_cpu_jobs_none(grid_runs, slurm_cluster):
    """From SLURM's own records (``scontrol show job``, kept for MinJobAge): every train
    job asked for one GPU on the GPU partition with one CPU, and its cell saw the one GPU
    SLURM gave it (``CUDA_VISIBLE_DEVICES`` in the cell's provenance, of the job that
    trained it); the dataset cache and the tables ran on the CPU partition without one."""
    jobs = submitted_jobs(grid_runs["first"].stdout + grid_runs["first"].stderr)
    jobs += submitted_jobs(grid_runs["second"].stdout + grid_runs["second"].stderr)
    train_jobs = {job for job, kind in jobs if kind == "rule_train"}
    for summary in (grid_runs["workdir"] / "results" / "cells").glob("*/summary.json"):
        provenance = json.loads(summary.read_text())["provenance"]
        assert provenance["slurm_job_id"] in train_jobs, provenance
        assert provenance["cuda_visible_devices"] in ("0", "1"), provenance
    kinds = {kind for _, kind in jobs}
    assert {"rule_train", "rule_tables"} <= kinds, jobs
    for job, kind in jobs:
        fields = job_record(slurm_cluster, job)
        if kind == "rule_train":
            assert fields.get("TresPerJob") == "gres:gpu:1", fields
            assert fields["Partition"] == "gpu" and fields["NumCPUs"] == "1", fields
        else:
            assert "TresPerJob" not in fields, fields
            assert fields["Partition"] == "cpu", fields


def test_a_job_gets_the_cpus_its_cell_uses_whatever_cores_says(
    slurm_cluster, user_config, tmp_path
):
    """With ``--cores 1`` below ``slurm.threads: 2``, SLURM still gives the training job two
    CPUs, the two threads its cell runs (before, Snakemake's cap at ``--cores`` made the job
    ask for one CPU while the cell ran two threads on it)."""
    write_study(tmp_path, {"pair": {"grid": {"seed": [0]}}}, FAST, threads=2)
    result = run_slurm(slurm_cluster, user_config, tmp_path, "study_pair", "--cores", "1")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    (train,) = [job for job, kind in submitted_jobs(output) if kind == "rule_train"]
    assert job_record(slurm_cluster, train)["NumCPUs"] == "2"
    (cell,) = cells_of(tmp_path)
    summary = json.loads((tmp_path / "results" / "cells" / cell / "summary.json").read_text())
    assert summary["threads"] == 2, summary


SLOW = {"model": "mlp", "depth": 1, "width": 16, "epochs": 40, "batch_size": 8}


def preempt_once_checkpointed(cluster, user_config, workdir: Path, *args: str) -> None:
    """Run the workflow; once a cell has checkpointed, SIGTERM its running job's steps (as
    SLURM does before a preemption); the workflow must still succeed."""
    process = start_slurm(cluster, user_config, workdir, *args)
    checkpoints = workdir / "results" / "checkpoints"
    wait_until(
        lambda: checkpoints.is_dir() and list(checkpoints.glob("*.pt")),
        "no checkpoint appeared",
        process,
    )
    (job,) = jobs_in(cluster, workdir, "RUNNING")
    cluster.run("scancel", "--signal=TERM", job)
    assert process.wait(timeout=TIMEOUT) == 0, (workdir / "snakemake.out").read_text()


def test_a_preempted_training_job_resumes_from_its_checkpoint(slurm_cluster, user_config, tmp_path):
    """SIGTERM to the running job (as before a preemption): the cell checkpoints and exits
    75, the rule's retries resubmit it, and it resumes to the result of an uninterrupted
    run."""
    write_study(tmp_path, {"slow": {"grid": {"seed": [0]}}}, SLOW)
    with_data_cache(tmp_path, SLOW)
    preempt_once_checkpointed(slurm_cluster, user_config, tmp_path, "study_slow")
    (cell,) = cells_of(tmp_path)
    log = train_log(tmp_path, cell)
    assert "signal 15" in log and "exiting with status 75" in log and "resumed from" in log
    summary = json.loads((tmp_path / "results" / "cells" / cell / "summary.json").read_text())
    assert summary["resumed"] == 1 and summary["epochs_run"] == SLOW["epochs"]
    assert_equals_an_uninterrupted_run(tmp_path, cell, SLOW, summary)


def test_a_run_does_not_start_beside_training_jobs_a_killed_run_left(
    slurm_cluster, user_config, tmp_path
):
    """A training job of this workflow still in SLURM after its snakemake was killed (here
    a stand-in, commented as the SLURM plugin comments a cell's job, in the workdir): the
    next run refuses before submitting anything, naming the job and the scancel that
    clears it; after that scancel, it runs. Before, it trained the cell a second time beside
    the orphan, two processes writing one checkpoint."""
    write_study(tmp_path, {"one": {"grid": {"seed": [0]}}}, FAST)
    submitted = slurm_cluster.run(
        "sbatch", "--parsable", "-p", "cpu", "-D", str(tmp_path), "-J", "earlier-run",
        "--comment", "rule_train_wildcards_digits-mlp1-batch-all-s0-0123456789",
        "--wrap", "sleep 300",
    )  # fmt: skip
    orphan = submitted.stdout.strip()
    try:
        refused = run_slurm(slurm_cluster, user_config, tmp_path, "study_one")
        output = refused.stdout + refused.stderr
        assert refused.returncode == 2, output
        assert f"{orphan} " in output and f"scancel {orphan}" in output, output
        assert submitted_jobs(output) == [], output
    finally:
        slurm_cluster.run("scancel", orphan)
    wait_until(lambda: not jobs_in(slurm_cluster, tmp_path), "the orphan did not end")
    result = run_slurm(slurm_cluster, user_config, tmp_path, "study_one")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(cells_of(tmp_path)) == 1


# 24 epochs: a cell trains for a few seconds, long enough to be caught training.
MEDIUM = {"model": "mlp", "depth": 1, "width": 16, "epochs": 24, "batch_size": 8}


def test_the_workflow_killed_and_started_again_resumes(slurm_cluster, user_config, tmp_path):
    """SIGKILL to the Snakemake process mid-run. Its SLURM jobs run on; the documented
    recovery cancels them (the cells running then checkpoint), unlocks and runs again:
    finished cells are not re-run, the interrupted ones resume, the tables are whole."""
    write_study(tmp_path, {"three": {"grid": {"seed": [0, 1, 2]}}}, MEDIUM)
    with_data_cache(tmp_path, MEDIUM)
    # One SLURM job at a time, so that a finished cell's job has left the queue when the
    # next cell runs (cancelling a job in the second between its cell's last write and
    # its end makes Snakemake there remove the outputs; the next run restores them from
    # the finished copy, not retraining, but with new file times).
    process = start_slurm(slurm_cluster, user_config, tmp_path, "tables", "--jobs", "1")
    cells_dir = tmp_path / "results" / "cells"

    def one_finished_and_another_running() -> bool:
        # A finishing cell has its summary and, for a moment, still its checkpoint: the
        # checkpoint must be another cell's, or the kill may catch no cell training.
        finished = {path.parent.name for path in cells_dir.glob("*/summary.json")}
        checkpoints = (tmp_path / "results" / "checkpoints").glob("*.pt")
        return bool(finished) and any(path.stem not in finished for path in checkpoints)

    wait_until(
        one_finished_and_another_running, "no cell finished while another was running", process
    )
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for job in jobs_in(slurm_cluster, tmp_path):
        slurm_cluster.run("scancel", job)
    wait_until(lambda: not jobs_in(slurm_cluster, tmp_path), "the cancelled job did not end")
    finished_before = summary_times(tmp_path)
    unlock = run_slurm(slurm_cluster, user_config, tmp_path, "--unlock")
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    again = run_slurm(slurm_cluster, user_config, tmp_path, "tables", "--jobs", "1")
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


def dry_run(cluster, user_config, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_slurm(cluster, user_config, workdir, "-n", *args)


def planned_resources(output: str, rule: str) -> list[dict[str, str]]:
    """The resources of every job of ``rule`` in a dry run's output."""
    blocks = re.findall(rf"rule {rule}:.*?resources: ([^\n]*)", output, re.DOTALL)
    return [dict(item.split("=", 1) for item in block.split(", ")) for block in blocks]


def test_the_dry_run_shows_what_the_cluster_gets(slurm_cluster, user_config, tmp_path):
    """``snakemake -n --profile slurm`` shows the real submission: a GPU, the GPU
    partition and the warning signal for every training job and for the estimate, the CPU
    partition and no GPU for the CPU-only jobs. (profiles/default, the workflow profile
    applied under any --profile, must not cap the GPUs.)"""
    write_study(tmp_path, GRID, FAST)
    result = dry_run(slurm_cluster, user_config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    train = planned_resources(result.stdout, "train")
    assert len(train) == 4, result.stdout
    for job in train:
        assert job["gpu"] == "1" and job["slurm_partition"] == "gpu", job
        assert job["slurm_extra"] == f"--signal=TERM@{300}", job
    for rule in ("prepare_data", "tables", "comparisons", "figure", "ols"):
        for job in planned_resources(result.stdout, rule):
            assert job["slurm_partition"] == "cpu" and "gpu" not in job, (rule, job)
    estimate = dry_run(slurm_cluster, user_config, tmp_path, "estimate")
    (job,) = planned_resources(estimate.stdout, "estimate")
    assert job["gpu"] == "1" and job["slurm_partition"] == "gpu", job


def test_the_preflight_refuses_what_the_cluster_would_reject(slurm_cluster, user_config, tmp_path):
    """Refused before anything is submitted, naming the study, the cell and the fix."""
    cases = {
        "no_gpu": ({"gpus": 0}, ["without a GPU", "study alpha", "slurm.gpus: 1"]),
        "too_long": (
            {"gpu_partition": "short", "max_runtime": 60},
            ["exceeds partition 'short'", f"at most {SHORT_MINUTES}"],
        ),
        "no_partition": ({"gpu_partition": "a100"}, ["'a100'", "cpu, gpu, short"]),
    }
    for name, (settings, phrases) in cases.items():
        workdir = tmp_path / name
        workdir.mkdir()
        write_study(workdir, GRID, FAST, **settings)
        for args in (("-n",), ()):
            result = run_slurm(slurm_cluster, user_config, workdir, *args)
            output = result.stdout + result.stderr
            assert result.returncode != 0 and "not submitted to SLURM" in output, output
            assert "Traceback" not in output, output
            for phrase in phrases:
                assert phrase in output, (name, phrase, output)
        assert not jobs_in(slurm_cluster, workdir), name
        assert not (workdir / "results").exists(), name


def test_without_sacct_a_profile_that_polls_it_is_refused(slurm_cluster, user_config, tmp_path):
    """The test cluster has no accounting daemon: a profile without
    ``slurm-status-command: squeue`` would wait forever for finished jobs."""
    home = tmp_path / "xdg"
    profile = home / "snakemake" / "slurm" / "config.yaml"
    profile.parent.mkdir(parents=True)
    text = (user_config / "snakemake" / "slurm" / "config.yaml").read_text()
    profile.write_text(text.replace("slurm-status-command: squeue", ""))
    workdir = tmp_path / "work"
    workdir.mkdir()
    write_study(workdir, GRID, FAST)
    result = run_slurm(slurm_cluster, home, workdir, "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "slurm-status-command: squeue" in output, output
    assert "Traceback" not in output


CHAINED = {"model": "mlp", "depth": 3, "width": 256, "epochs": 600, "batch_size": 8}
"""A cell that trains for several times the ``short`` partition's limit on one CPU."""


def test_a_cell_longer_than_its_partition_allows_finishes_through_a_chain_of_jobs(
    slurm_cluster, user_config, tmp_path
):
    """On ``short`` (MaxTime 2 minutes) no job asks for more than 2 minutes; SLURM warns
    each one 30 s before its limit (``--signal``), the cell checkpoints and exits, the
    rule's retries (as many as the cell's estimate needs) resubmit it, and it finishes
    with curves bitwise equal to an uninterrupted local run."""
    write_study(
        tmp_path,
        {"long": {"grid": {"seed": [0]}}},
        CHAINED,
        gpu_partition="short",
        warn_seconds=30,
        startup_minutes=0.25,
        minutes_per_gstep=40.0,
        retries=0,
    )
    with_data_cache(tmp_path, CHAINED)
    # Trained meanwhile on the node's other core: the test waits for one chain, not two runs.
    reference_run = start_reference_run(tmp_path, CHAINED)
    plan = dry_run(slurm_cluster, user_config, tmp_path, "study_long")
    (job,) = planned_resources(plan.stdout, "train")
    assert job["runtime"] == str(SHORT_MINUTES), plan.stdout
    process = start_slurm(slurm_cluster, user_config, tmp_path, "tables")
    # Meanwhile `normstudy status` sees the cell running in a SLURM job of this workflow
    # (once the plan is written).
    wait_until(
        lambda: (
            (status(slurm_cluster, tmp_path) or {"cells": [{}]})["cells"][0].get("state")
            == "running"
        ),
        "normstudy status never showed the cell running",
        process,
        timeout=TIMEOUT,
    )
    seen = status(slurm_cluster, tmp_path)
    assert seen["slurm"]["checked"] and seen["slurm"]["jobs"], seen
    assert process.wait(timeout=TIMEOUT) == 0, (tmp_path / "snakemake.out").read_text()
    output = (tmp_path / "snakemake.out").read_text()
    after = status(slurm_cluster, tmp_path)
    assert after["total"]["counts"]["ok"] == 1 and not after["slurm"]["jobs"], after
    (cell,) = cells_of(tmp_path)
    log = train_log(tmp_path, cell)
    summary = json.loads((tmp_path / "results" / "cells" / cell / "summary.json").read_text())
    assert summary["resumed"] >= 1 and log.count("resumed from") == summary["resumed"], log
    assert summary["epochs_run"] == CHAINED["epochs"]
    jobs = [job for job, kind in submitted_jobs(output) if kind == "rule_train"]
    # SLURM may send the warning up to a minute early: if it reaches a step that has just
    # finished the cell, the job fails anyway and its retry restores the finished outputs
    # (seen in CI: resumed once, three jobs, the third restoring).
    restored = log.count("outputs restored from")
    assert restored <= 1 and len(jobs) == summary["resumed"] + 1 + restored, (log, output)
    records = {record["JobId"]: record for record in slurm_cluster.completed_jobs()}
    for job in jobs:
        assert records[job]["TimeLimit"] == str(SHORT_MINUTES), records[job]
        assert records[job]["Partition"] == "short", records[job]
    assert_equals_an_uninterrupted_run(tmp_path, cell, CHAINED, summary, reference_run)


def status(cluster, workdir: Path) -> dict | None:
    """``normstudy status --json`` of the workdir's results, as a user runs it there; None
    before the plan is written (exit status 2)."""
    result = subprocess.run(
        [NORMSTUDY, "status", "--json"],
        cwd=workdir,
        env=cluster.env,
        capture_output=True,
        text=True,
    )
    if result.returncode == 2 and "plan.json" in result.stderr:
        return None
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_profile_command_fills_in_what_the_cluster_reports(slurm_cluster, tmp_path):
    env = {**slurm_cluster.env, "XDG_CONFIG_HOME": str(tmp_path)}

    def profile(*args):
        return subprocess.run(
            [NORMSTUDY, "slurm-profile", *args], env=env, capture_output=True, text=True
        )

    written = profile()
    assert written.returncode == 0, written.stderr
    path = tmp_path / "snakemake" / "slurm" / "config.yaml"
    text = yaml.safe_load(path.read_text())
    # The default partition has GPUs on the test cluster, so it is chosen; no accounting
    # here: no account and squeue for status, each said.
    assert text["executor"] == "slurm" and text["default-resources"]["slurm_partition"] == "cpu"
    assert text["slurm-no-account"] is True and text["slurm-status-command"] == "squeue"
    assert "sacct does not work here" in written.stdout
    again = profile()
    assert again.returncode == 2 and "--force" in again.stderr
    wrong = profile("--partition", "a100", "--force")
    assert wrong.returncode == 2 and "cpu, gpu, short" in wrong.stderr


SHARED = {"model": "mlp", "depth": 1, "width": 16, "epochs": 20, "batch_size": 8}
"""Cells long enough (on one CPU each) for two of them to be seen running at once."""


def write_sharing_study(workdir: Path, defaults: dict, cells_per_gpu: int, **slurm) -> None:
    """A study of two cells with ``resources.cells_per_gpu`` set."""
    write_study(workdir, {"pair": {"grid": {"seed": [0, 1]}}}, defaults, **slurm)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["resources"]["cells_per_gpu"] = cells_per_gpu
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def test_cells_share_a_gpu_through_slurm_shards(slurm_cluster, user_config, tmp_path):
    """``resources: {cells_per_gpu: 2}`` under SLURM: each cell is still its own job, asks
    for half a GPU's shards (the test cluster has 2 shards per GPU: ``gres:shard:1``) and no
    whole GPU, sees the device SLURM gives it, and two such jobs run at once."""
    write_sharing_study(tmp_path, SHARED, cells_per_gpu=2)
    planned = dry_run(slurm_cluster, user_config, tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    train = planned_resources(planned.stdout, "train")
    assert len(train) == 2 and all(
        job["gres"] == "shard:1" and "gpu" not in job for job in train
    ), train
    result = run_slurm(slurm_cluster, user_config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    submitted = submitted_jobs(result.stdout + result.stderr)
    jobs = [job for job, kind in submitted if kind == "rule_train"]
    records = [job_record(slurm_cluster, job) for job in jobs]
    assert len(records) == 2, jobs
    for record in records:
        assert record.get("TresPerNode") == "gres:shard:1", record
        assert "TresPerJob" not in record, record  # no --gpus
    first, second = records
    assert first["StartTime"] <= second["EndTime"] and second["StartTime"] <= first["EndTime"], (
        "the two sharing cells did not run at once",
        records,
    )
    for summary in (tmp_path / "results" / "cells").glob("*/summary.json"):
        provenance = json.loads(summary.read_text())["provenance"]
        assert provenance["slurm_job_id"] in jobs, provenance
        assert provenance["cuda_visible_devices"] in ("0", "1"), provenance


def test_sharing_gpus_is_refused_where_slurm_cannot_share(slurm_cluster, user_config, tmp_path):
    """Grouped training jobs cannot share (SLURM gives each bundled cell's srun step the
    job's GPUs for itself), nor can multi-GPU cells, nor a share that does not divide a
    GPU's shards: refused while planning, before anything is submitted."""
    cases = {
        "grouped": (2, {}, ("--groups", "train=cells", "--group-components", "cells=2"), "grouped"),
        "multi_gpu": (2, {"gpus": 2}, (), "slurm.gpus is 2"),
        "indivisible": (3, {}, (), "valid values: 1, 2"),
    }
    for name, (cells_per_gpu, slurm, args, phrase) in cases.items():
        workdir = tmp_path / name
        workdir.mkdir()
        write_sharing_study(workdir, FAST, cells_per_gpu, **slurm)
        result = dry_run(slurm_cluster, user_config, workdir, *args)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "not submitted to SLURM" in output, (name, output)
        assert "resources.cells_per_gpu" in output and phrase in output, (name, output)
        assert "Traceback" not in output and 'common.smk", line' not in output, output


BUNDLE = ("--groups", "train=cells", "--group-components", "cells=3")


def server_processes(socket_name: str) -> list[int]:
    """Pids of warm servers serving ``socket_name`` (by their command line)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"normstudy.warm.server" in args and any(socket_name.encode() in a for a in args):
            found.append(int(cmdline.parent.name))
    return found


def test_a_bundles_cells_are_forked_by_one_warm_server_of_its_job(
    slurm_cluster, user_config, tmp_path
):
    """``warm_worker: true`` with bundles: the bundle's batch step starts one warm server,
    every cell of the bundle (each in its own srun step) is forked by it, the results are
    bitwise those of a fresh process, and the server ends with the job. The bundle asks
    SLURM for what running its cells one after another needs, even where ``--cores``
    would let Snakemake size it for three cells at once: one cell's GPU and CPUs, the sum
    of the cells' times (before, three GPUs: it never started on this 2-GPU node)."""
    write_study(tmp_path, {"trio": {"grid": {"seed": [0, 1, 2]}}}, FAST)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**config, "warm_worker": True}))
    with_data_cache(tmp_path, FAST)
    reference = start_reference_run(tmp_path, {**FAST, "seed": 2})
    planned = planned_resources(dry_run(slurm_cluster, user_config, tmp_path).stdout, "train")
    result = run_slurm(slurm_cluster, user_config, tmp_path, "study_trio", *BUNDLE, "--cores", "8")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    bundles = [job for job, kind in submitted_jobs(output) if kind.startswith("group_cells")]
    assert len(bundles) == 1, submitted_jobs(output)
    assert job_record(slurm_cluster, bundles[0])["TresPerJob"] == "gres:gpu:1"
    (record,) = [r for r in slurm_cluster.completed_jobs() if r["JobId"] == bundles[0]]
    assert record["Tres"].startswith("cpu=1,"), record
    assert record["TimeLimit"] == str(sum(int(job["runtime"]) for job in planned)), record
    logs = sorted((tmp_path / "results" / "logs" / "train").glob("*.log"))
    assert len(logs) == 3, logs
    servers = set()
    for log in logs:
        text = log.read_text()
        assert "fresh process" not in text, text
        servers |= set(re.findall(r"forked by (job-\w+\.sock)", text))
    assert len(servers) == 1, servers
    (server,) = servers
    wait_until(lambda: not server_processes(server), "the job's server outlived it", timeout=30)
    summaries = {
        cell: json.loads((tmp_path / "results" / "cells" / cell / "summary.json").read_text())
        for cell in cells_of(tmp_path)
    }
    (cell,) = [cell for cell, summary in summaries.items() if summary["seed"] == 2]
    assert_equals_an_uninterrupted_run(tmp_path, cell, FAST, summaries[cell], reference)


def test_a_preempted_bundle_of_warm_cells_resumes_from_their_checkpoints(
    slurm_cluster, user_config, tmp_path
):
    """SIGTERM to a running bundle's steps (as before a preemption): each warm cell, forked
    in the batch step but signalled through its client in its srun step, checkpoints and
    exits 75; the retry resubmits the bundle and the cells resume to an uninterrupted
    run's result."""
    write_study(tmp_path, {"slow": {"grid": {"seed": [0, 1]}}}, SLOW)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**config, "warm_worker": True}))
    with_data_cache(tmp_path, SLOW)
    args = ("study_slow", "--groups", "train=cells", "--group-components", "cells=2")
    preempt_once_checkpointed(slurm_cluster, user_config, tmp_path, *args)
    resumed = 0
    for cell in cells_of(tmp_path):
        log = train_log(tmp_path, cell)
        summary = json.loads((tmp_path / "results" / "cells" / cell / "summary.json").read_text())
        if summary["resumed"]:
            assert "signal 15" in log and "resumed from" in log, log
            resumed += 1
        assert summary["epochs_run"] == SLOW["epochs"]
        assert_equals_an_uninterrupted_run(
            tmp_path, cell, {**SLOW, "seed": summary["seed"]}, summary
        )
    assert resumed >= 1
    logs = (tmp_path / "results" / "logs" / "train").glob("*.log")
    assert all("forked by job-" in log.read_text() for log in logs)
