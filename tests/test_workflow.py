"""The Snakemake workflow end to end: planned jobs, incremental re-runs, bad configs."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from normstudy.figures.catalog import FIGURE_NAMES

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
RESOURCES = {
    "threads": 1,
    "gpu": 0,
    "mem_mb": 1000,
    "mem_mb_per_mparam": 100,
    "runtime": 5,
    "minutes_per_gstep": 1.0,
}


def config_head() -> dict:
    """Every top-level key of a small test study's config but its defaults and studies."""
    return {
        "scale": "demo",
        "data_dir": "data",
        "download": False,
        "resources": RESOURCES,
        "ols": {"d": [2], "kappa": [10], "lr": [0.1], "steps": 5},
    }


def write_config(workdir: Path, studies: dict, defaults: dict | None = None) -> None:
    config = {
        **config_head(),
        "defaults": defaults
        or {"model": "mlp", "depth": 1, "width": 16, "epochs": 3, "batch_size": 32},
        "studies": studies,
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2"]
    result = subprocess.run(command + list(args), capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def planned_jobs(workdir: Path, *targets: str) -> dict[str, int]:
    """Rule -> number of jobs a dry run plans ({} when there is nothing to do)."""
    result = snakemake(workdir, "-n", *targets)
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE))
    counts.pop("total", None)
    return {rule: int(n) for rule, n in counts.items()}


AFTER_TRAINING = {
    "plan": 1,
    "check_build": 1,
    "check_cells": 1,
    "tables": 1,
    "comparisons": 1,
    "comparison_table": 1,
    "figure": len(FIGURE_NAMES),
    "all": 1,
}
"""Jobs downstream of any re-trained cell: the tables, statistics and every figure."""
TOY = {"toy": {"grid": {"lr": [0.05, 0.1], "seed": [0, 1]}}}


def test_dry_run_plans_one_job_per_unique_cell(tmp_path):
    write_config(tmp_path, {**TOY, "other": {"grid": {"lr": [0.1, 0.2], "seed": [1]}}})
    jobs = planned_jobs(tmp_path)
    assert jobs == {
        "plan": 1,
        "check_build": 1,
        "prepare_data": 1,
        "train": 5,
        "check_cells": 1,
        "tables": 1,
        "comparisons": 1,
        "comparison_table": 1,
        "ols": 1,
        "figure": len(FIGURE_NAMES),
        "all": 1,
    }
    assert planned_jobs(tmp_path, "study_other")["train"] == 2


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    write_config(workdir, TOY)
    snakemake(workdir)
    return workdir


def test_run_produces_one_row_per_cell_and_rerun_does_nothing(finished_run):
    cells = pq.read_table(finished_run / "results/tables/cells.parquet").to_pandas()
    assert len(cells) == 4 and set(cells["status"]) == {"ok"}
    assert sorted(zip(cells["lr"], cells["seed"], strict=True)) == [
        (0.05, 0),
        (0.05, 1),
        (0.1, 0),
        (0.1, 1),
    ]
    assert (cells["final_test_acc"] > 0.5).all()
    curves = pq.read_table(finished_run / "results/tables/curves.parquet")
    assert curves.num_rows == 4 * 3
    # The process that trained, not a client waiting for it: torch alone is above 150 MB.
    assert (cells["max_rss_mb"] > 150).all() and (cells["cpu_seconds"] > 0).all()
    assert cells["gpu_max_allocated_mb"].isna().all()
    assert (cells["host"] == socket.gethostname()).all()  # provenance, through the workflow
    assert planned_jobs(finished_run) == {}


def test_status_after_the_run_shows_every_cell_ok(finished_run):
    def status(*args: str) -> str:
        command = [sys.executable, "-m", "normstudy.cli", "status", "--results", *args]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    document = json.loads(status(str(finished_run / "results"), "--json"))
    zero = {"diverged": 0, "failed": 0, "running": 0, "pending": 0}
    assert document["studies"]["toy"]["counts"] == {"ok": 4, **zero}
    assert {cell["state"] for cell in document["cells"]} == {"ok"}
    assert all(cell["seconds"] > 0 for cell in document["cells"])
    assert document["total"]["estimate_seconds"] == 0
    text = status(str(finished_run / "results"))
    assert re.search(r"^toy\s+4\s+4\s+0\s+0\s+0\s+0\s+0 s$", text, flags=re.MULTILINE), text


def test_changing_one_value_reruns_exactly_the_affected_cells(finished_run, tmp_path):
    write_config(finished_run, {"toy": {"grid": {"lr": [0.05, 0.2], "seed": [0, 1]}}})
    jobs = planned_jobs(finished_run)
    write_config(finished_run, TOY)
    assert jobs == {**AFTER_TRAINING, "train": 2}


def test_adding_a_seed_adds_only_the_new_cells(finished_run):
    write_config(finished_run, {"toy": {"grid": {"lr": [0.05, 0.1], "seed": [0, 1, 2]}}})
    jobs = planned_jobs(finished_run)
    # The study's own target too: Snakemake 9.27 drops a missing cell behind an ancient()
    # input when the plan changes in the same run, unless the target reaches the plan
    # (docs/design.md, "Snakemake behaviour the workflow works around").
    study_jobs = planned_jobs(finished_run, "study_toy")
    write_config(finished_run, TOY)
    assert jobs == {**AFTER_TRAINING, "train": 2}
    assert study_jobs == {"plan": 1, "check_build": 1, "train": 2, "study_toy": 1}
    assert planned_jobs(finished_run, "study_toy") == {}


def test_adding_a_study_sharing_cells_trains_only_new_ones(finished_run):
    write_config(finished_run, {**TOY, "more": {"grid": {"lr": [0.1, 0.3], "seed": [0]}}})
    jobs = planned_jobs(finished_run)
    write_config(finished_run, TOY)
    assert jobs == {**AFTER_TRAINING, "train": 1}


def test_a_killed_training_job_resumes_from_its_checkpoint(tmp_path):
    """Kill the whole workflow mid-cell; the re-run resumes instead of starting over.

    The checkpoint lives outside the job's declared outputs, so Snakemake's cleanup of
    an incomplete job keeps it.
    """
    slow = {"model": "mlp", "depth": 1, "width": 16, "epochs": 30, "batch_size": 8}
    write_config(tmp_path, {"slow": {"grid": {"seed": [0]}}}, defaults=slow)
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    checkpoints = tmp_path / "results" / "checkpoints"
    deadline = time.monotonic() + 180
    while not (checkpoints.is_dir() and list(checkpoints.glob("[!.]*.pt"))):
        assert process.poll() is None, "the workflow ended before any checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    summaries = list((tmp_path / "results" / "cells").glob("*/summary.json"))
    assert summaries == [], "the cell finished before it was killed"
    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, "--rerun-incomplete")
    summary = json.loads(next((tmp_path / "results" / "cells").glob("*/summary.json")).read_text())
    assert summary["resumed"] == 1 and summary["status"] == "ok"
    assert summary["epochs_run"] == 30


@pytest.mark.parametrize(
    ("studies", "message"),
    [
        ({"bad": {"grid": {"norm": ["magic"]}}}, "norm 'magic' is unknown"),
        ({"bad": {"grid": {"depth": [15]}, "set": {"model": "resnet"}}}, "6n+2"),
        ({"bad name": {"grid": {"seed": [0]}}}, "does not match"),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, studies, message):
    write_config(tmp_path, studies)
    result = snakemake(tmp_path, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_lint_passes():
    result = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(REPO), "--lint"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def slurm_dry_run(
    workdir: Path, *options: str, sinfo: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """``snakemake -n`` under the repository's SLURM profile template, with SLURM's client
    tools answering as on a machine with no reachable cluster, at once (a real ``sinfo``
    without a cluster waits a minute before it says so); or, given ``sinfo``, with a
    cluster whose ``sinfo`` prints that and whose ``sacct`` works."""
    tools = workdir / "no-cluster-bin"
    tools.mkdir(exist_ok=True)
    for tool in ("sinfo", "sacct"):
        stub = tools / tool
        if sinfo is None:
            body = f"echo '{tool}: error: Unable to contact slurm controller' >&2\nexit 1"
        else:
            body = f"printf '%s' {shlex.quote(sinfo)}" if tool == "sinfo" else "exit 0"
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n", *options]
    command += ["--profile", str(REPO / "profiles" / "slurm")]
    return command, {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}


def test_slurm_profile_template_dry_run(tmp_path):
    """The template profile plans every training job with a GPU, away from any cluster
    (``sinfo`` cannot answer: nothing to check against; tests/slurm has a real one)."""
    write_config(tmp_path, TOY)
    command, env = slurm_dry_run(tmp_path, "-p")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    train = re.findall(r"rule train:.*?resources: ([^\n]*)", result.stdout, re.DOTALL)
    assert train and all("gpu=1" in line for line in train), train
    # warm_worker: local (the default) leaves the warm worker out under SLURM.
    assert "normstudy.warm" not in result.stdout + result.stderr


def test_under_the_slurm_executor_only_bundles_use_a_warm_server(tmp_path):
    """Each cell of a SLURM job or bundle runs in its own srun step, where a server the cell
    started would serve that cell only (BENCHMARKS.md): with warm_worker: true, the cells of
    bundles (train in --groups) use the server their batch step starts, others are plain
    processes and the run says so."""
    write_config(tmp_path, TOY)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**config, "warm_worker": True}))
    command, env = slurm_dry_run(tmp_path, "-p")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " -m normstudy.cli train " in output and "normstudy.warm" not in output
    assert "warm_worker: true under the SLURM executor serves bundles of cells only" in output
    bundles = ["--groups", "train=cells", "--group-components", "cells=2"]
    result = subprocess.run(command + bundles, capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " -m normstudy.warm train " in output and " -m normstudy.cli train " not in output
    assert "serves bundles of cells only" not in output


def test_bundles_are_sized_for_cells_run_one_after_another_within_the_time_cap(tmp_path):
    """A bundle's cells run one after another (the SLURM executor's job step has --jobs 1),
    so it must ask for one cell's GPU and CPUs and the sum of their times: each training
    job takes a bundle slot, of which a bundle has one. Bundles whose cells could not fit the
    cap (here slurm.max_runtime) one after another are refused while planning, naming the
    size that fits; finished cells are not counted."""
    write_config(tmp_path, TOY)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["slurm"] = {"max_runtime": 30}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command, env = slurm_dry_run(tmp_path)
    alone = subprocess.run(command, capture_output=True, text=True, env=env)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "bundle_slot" not in alone.stdout
    # Each toy cell asks for 11 minutes (startup 5, warning 5, training): 2 fit in 30.
    (minutes,) = set(re.findall(r"rule train:.*?runtime=(\d+)", alone.stdout, re.DOTALL))
    assert int(minutes) == 11
    bundles = ["--groups", "train=cells", "--group-components", "cells=3"]
    refused = subprocess.run(command + bundles, capture_output=True, text=True, env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--group-components cells=3" in refused.stderr, refused.stderr
    assert "3 x 11 min" in refused.stderr and "--group-components cells=2" in refused.stderr
    assert "rule train:" not in refused.stdout
    # Cells already finished need no room in a bundle: with two of the four done, bundles
    # of three hold at most the two that remain.
    cells = re.findall(r"rule train:.*?wildcards: cell=(\S+)", alone.stdout, re.DOTALL)
    for cell in cells[:2]:
        for name in ("summary.json", "curves.parquet", "probes.parquet"):
            (tmp_path / "results" / "cells" / cell).mkdir(parents=True, exist_ok=True)
            (tmp_path / "results" / "cells" / cell / name).write_text("{}")
    remaining = subprocess.run(command + bundles, capture_output=True, text=True, env=env)
    assert remaining.returncode == 0, remaining.stdout + remaining.stderr
    for cell in cells[:2]:
        shutil.rmtree(tmp_path / "results" / "cells" / cell)
    bundles[-1] = "cells=2"
    fits = subprocess.run(command + bundles, capture_output=True, text=True, env=env)
    assert fits.returncode == 0, fits.stdout + fits.stderr
    slots = re.findall(r"rule train:.*?resources: [^\n]*bundle_slot=1", fits.stdout, re.DOTALL)
    assert len(slots) == 4, fits.stdout
    assert "cells=2): 4 training cells to run, in at least 2 SLURM jobs of up" in fits.stderr
    # A study_<name> target: only its cells count (here the one study: all four).
    target = subprocess.run(command + ["study_toy"] + bundles, capture_output=True, env=env)
    assert b"4 training cells to run" in target.stderr, target.stderr
    assert "at most 22 min" in fits.stderr
    # Components for a group that --groups does not name: Snakemake bundles nothing by them.
    mismatched = ["--groups", "train=cells", "--group-components", "train=3"]
    warned = subprocess.run(command + mismatched, capture_output=True, text=True, env=env)
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "--group-components names no group of --groups: train (groups: cells)" in warned.stderr


def test_slurm_jobs_ask_for_the_cpus_their_cells_use_whatever_cores_says(tmp_path):
    """Snakemake lowers a rule's threads to ``--cores`` in the process that submits, and the
    SLURM plugin would ask for that many CPUs, while the job's own Snakemake runs the cell
    with ``slurm.threads`` threads: training and estimation jobs name their CPUs
    (``cpus_per_task``, which the plugin's sbatch and srun read) from ``slurm.threads``."""
    write_config(tmp_path, TOY)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["slurm"] = {"threads": 3}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command, env = slurm_dry_run(tmp_path, "--cores", "1")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    train = re.findall(r"rule train:.*?resources: ([^\n]*)", result.stdout, re.DOTALL)
    assert len(train) == 4 and all("cpus_per_task=3" in t for t in train), train
    (data,) = re.findall(r"rule prepare_data:.*?resources: ([^\n]*)", result.stdout, re.DOTALL)
    assert "cpus_per_task" not in data, data


def test_cpu_jobs_ask_for_time_within_their_own_partitions_limit(tmp_path):
    """Training on a partition with a 2-minute limit caps the training jobs, not the data
    preparation on the CPU partition, whose limit is its own (here none)."""
    write_config(tmp_path, TOY)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["slurm"] = {"gpu_partition": "short", "startup_minutes": 0, "warn_seconds": 30}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    partitions = "cpu*|infinite|(null)|up\ngpu|infinite|gpu:2|up\nshort|2:00|gpu:2|up\n"
    command, env = slurm_dry_run(tmp_path, sinfo=partitions)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (data,) = re.findall(r"rule prepare_data:.*?resources: ([^\n]*)", result.stdout, re.DOTALL)
    assert "slurm_partition=cpu" in data and "runtime=30" in data, data
    train = re.findall(r"rule train:.*?resources: ([^\n]*)", result.stdout, re.DOTALL)
    assert train and all("slurm_partition=short" in t for t in train), train
    assert all(int(re.search(r"runtime=(\d+)", t).group(1)) <= 2 for t in train), train


def test_report_holds_the_figures_and_the_comparison_table(finished_run):
    """``snakemake --report`` works with the declared dependencies and includes the
    statistics, not only figures."""
    report = finished_run / "report.html"
    snakemake(finished_run, "--report", str(report))
    text = report.read_text(errors="replace")
    assert "comparisons.html" in text
    assert "Statistical comparisons" in text
    assert "acc_vs_depth" in text or "curves" in text


def test_editing_one_figures_code_reruns_only_that_figure(finished_run):
    """Snakemake re-runs a job when an input's content changed (not on a mere touch)."""
    from normstudy.figures.catalog import figure_module

    module = REPO / "src" / "normstudy" / figure_module("curves")
    original, before = module.read_bytes(), module.stat()
    module.write_bytes(original + b"\n# an edit of the plotting code\n")
    try:
        jobs = planned_jobs(finished_run)
    finally:
        module.write_bytes(original)
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert jobs == {"figure": 1, "all": 1}


def test_power_report_and_suggested_seeds_plan_only_the_new_cells(finished_run):
    """The comparisons rule writes the power report; the seed list `normstudy power
    --suggest` prints for a study, set in config.yaml, trains only the new seeds' cells."""
    import pandas as pd

    from normstudy.power_report import power_rows, seed_suggestions

    tables = finished_run / "results" / "tables"
    assert (tables / "power.md").read_text().startswith("# Power of the comparisons")
    assert (tables / "power.csv").read_text().startswith("study,family,candidate")
    command = [sys.executable, "-m", "normstudy.cli", "power", str(tables / "comparisons.parquet")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [*command, "--suggest"], cwd=finished_run, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0 and "at demo scale" in result.stdout, result.stderr
    # toy declares no comparison; one whose observed effect needs 3 seeds a side
    needs_three = {
        "study": "toy",
        "family": "toy/lr=0.1/final_test_acc",
        "candidate": "0.05",
        "condition": "{}",
        "paired": True,
        "n_ref": 2,
        "n_cand": 2,
        "n_needed": 3,
        "smallest_effect": float("nan"),
        "n_needed_smallest": None,
    }
    (line,) = seed_suggestions(power_rows(pd.DataFrame([needs_three])), TOY, "demo")
    key, value = line.split("#")[0].split(":", 1)
    assert key == "studies.toy.grid.seed"
    studies = {"toy": {"grid": {**TOY["toy"]["grid"], "seed": yaml.safe_load(value)}}}
    write_config(finished_run, studies)
    jobs = planned_jobs(finished_run)
    write_config(finished_run, TOY)
    assert jobs == {**AFTER_TRAINING, "train": 2}


def test_a_version_bump_reruns_exactly_the_cells_using_that_part(tmp_path, monkeypatch):
    """Bumping noisy BN's version (through the test hook, which the Snakemake subprocess
    and its jobs see) re-plans the noisy-BN cell only; the old cell stays on disk, flagged."""
    from normstudy.behaviour import OVERRIDES_VARIABLE, version_of

    now = version_of("norm.batch_noisy")
    write_config(tmp_path, {"pair": {"grid": {"norm": ["batch", "batch_noisy"], "seed": [0]}}})
    snakemake(tmp_path, "tables")
    old_cells = sorted(p.name for p in (tmp_path / "results/cells").iterdir())
    unshuffled = version_of("training.unshuffled_order") + 1
    monkeypatch.setenv(OVERRIDES_VARIABLE, json.dumps({"training.unshuffled_order": unshuffled}))
    assert planned_jobs(tmp_path, "tables") == {}  # no cell of this study uses it
    monkeypatch.setenv(OVERRIDES_VARIABLE, json.dumps({"norm.batch_noisy": now + 1}))
    after_training = {"plan": 1, "check_build": 1, "check_cells": 1, "tables": 1}
    assert planned_jobs(tmp_path, "tables") == {**after_training, "train": 1}
    result = snakemake(tmp_path, "tables")
    assert "1 cell(s) under results/cells were made by versions no longer current" in (
        result.stderr
    )
    log = (tmp_path / "results/logs/tables.log").read_text()
    assert f"norm.batch_noisy v{now} (now v{now + 1})" in log
    cells = pq.read_table(tmp_path / "results/tables/cells.parquet").to_pylist()
    versions = {row["norm"]: json.loads(row["behaviour_versions"]) for row in cells}
    assert versions["batch_noisy"]["norm.batch_noisy"] == now + 1
    assert versions["batch"]["norm.batch"] == 1 and "norm.batch_noisy" not in versions["batch"]
    on_disk = sorted(p.name for p in (tmp_path / "results/cells").iterdir())
    assert set(old_cells) < set(on_disk) and len(on_disk) == 3  # the old noisy cell is kept
    assert planned_jobs(tmp_path, "tables") == {}
