"""``normstudy status`` on a fake results tree: states, logs, epochs, SLURM, estimate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from normstudy import status
from normstudy.cli import main
from normstudy.grid import plan_document, plan_studies
from normstudy.jobs import SlurmQueue, local_training_cells, parse_squeue

STUDIES = {
    "alpha": {"grid": {"lr": [0.1, 0.2, 0.3, 0.4], "seed": [0]}},
    "beta": {"grid": {"lr": [0.3, 0.5, 0.6, 0.7], "seed": [0]}},
}
"""Two studies sharing the lr 0.3 cell: seven cells."""
NO_SQUEUE = SlurmQueue([], "squeue not found: SLURM jobs not checked")
STAMP = "2026-12-02 10:00:00"


def cell_ids(plan: dict) -> dict[float, str]:
    return {config["lr"]: cell for cell, config in plan["cells"].items()}


def write_summary(results: Path, cell: str, state: str, seconds: float) -> None:
    summary = {
        "status": state,
        "train_seconds": seconds - 1,
        "eval_seconds": 1.0,
        "epochs_run": 4,
        "epochs_planned": 4,
    }
    path = results / "cells" / cell / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary))


def write_train_log(results: Path, cell: str, *messages: str) -> None:
    path = results / "cells" / cell / "train.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{STAMP} {message}\n" for message in messages))


def epoch_line(epoch: int, epochs: int) -> str:
    return (
        f"epoch {epoch}/{epochs} step {10 * epoch} lr 0.1 train loss 1.0000 acc 0.5000 | "
        "val acc 0.5000 | test loss 1.0000 acc 0.5000 | 0.4s"
    )


START = "start digits mlp norm=batch freeze=all seed=0 on cpu, 4 epochs x 10 steps"


@pytest.fixture
def results(tmp_path) -> Path:
    """lr 0.1 ok, 0.2 diverged, 0.3 failed (shared), 0.4 running at epoch 2/4, 0.5 ok,
    0.6 pending (nothing yet), 0.7 stopped by SIGTERM at epoch 1 (pending)."""
    results = tmp_path / "results"
    results.mkdir()
    plan = plan_document(plan_studies({"defaults": {"model": "mlp"}, "studies": STUDIES}))
    (results / "plan.json").write_text(json.dumps(plan))
    cell = cell_ids(plan)
    write_summary(results, cell[0.1], "ok", 12.0)
    write_summary(results, cell[0.2], "diverged", 4.0)
    write_summary(results, cell[0.5], "ok", 20.0)
    write_train_log(results, cell[0.3], START, epoch_line(1, 4))
    log = results / "logs" / "train" / f"{cell[0.3]}.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "RuntimeError: injected crash\n"
    )
    write_train_log(results, cell[0.4], START, epoch_line(1, 4), epoch_line(2, 4))
    (results / "checkpoints").mkdir()
    (results / "checkpoints" / f"{cell[0.4]}.pt").write_bytes(b"checkpoint")
    (log.parent / f"{cell[0.4]}.log").write_text("")
    write_train_log(
        results,
        cell[0.7],
        START,
        epoch_line(1, 4),
        "signal 15 at step 13: checkpoint written, exiting with status 75",
    )
    (results / "checkpoints" / f"{cell[0.7]}.pt").write_bytes(b"checkpoint")
    return results


def collect(results: Path, running: set[str], queue: SlurmQueue = NO_SQUEUE, **kwargs):
    return status.collect(results, local=lambda cells: running, slurm=lambda r: queue, **kwargs)


def test_states_per_study_failed_log_and_running_epoch(results):
    cell = cell_ids(json.loads((results / "plan.json").read_text()))
    report = collect(results, running={cell[0.4]})
    assert report.counts(report.studies["alpha"]) == {
        "ok": 1,
        "diverged": 1,
        "failed": 1,
        "running": 1,
        "pending": 0,
    }
    assert report.counts(report.studies["beta"]) == {
        "ok": 1,
        "diverged": 0,
        "failed": 1,
        "running": 0,
        "pending": 2,
    }
    failed = report.cells[cell[0.3]]
    assert failed.studies == ["alpha", "beta"]
    assert failed.log == str(results / "logs" / "train" / f"{cell[0.3]}.log")
    assert failed.detail == "RuntimeError: injected crash"
    running = report.cells[cell[0.4]]
    assert (running.epoch, running.epochs, running.detail) == (2, 4, "epoch 2/4")
    assert "signal 15 at epoch 1/4" in report.cells[cell[0.7]].detail
    assert report.cells[cell[0.6]].detail == ""
    # alpha: 12 s (the diverged cell's 4 s are not a whole cell's) x half a cell left;
    # beta: 20 s x 2 cells; one cell running at a time.
    assert report.study_estimate("alpha") == pytest.approx(6.0)
    assert report.study_estimate("beta") == pytest.approx(40.0)
    assert report.total_estimate() == (pytest.approx(46.0), 0)
    text = status.render_text(report)
    listed = {
        line.split()[1]: line.split(maxsplit=3) for line in text.splitlines() if "-s0-" in line
    }
    assert listed[cell[0.3]] == [
        "failed",
        cell[0.3],
        "alpha,beta",
        f"{failed.detail}; read {failed.log}",
    ]
    assert listed[cell[0.4]] == ["running", cell[0.4], "alpha", "epoch 2/4"]
    assert set(listed) == {cell[0.3], cell[0.4], cell[0.7]}
    assert "squeue not found" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line}
    assert lines["alpha"][1:7] == ["4", "1", "1", "1", "1", "0"]
    assert lines["beta"][1:7] == ["4", "1", "0", "1", "0", "2"]


def test_a_started_cell_that_runs_nowhere_is_pending_unless_that_cannot_be_known(results):
    cell = cell_ids(json.loads((results / "plan.json").read_text()))
    stopped = collect(results, running=set()).cells[cell[0.4]]
    assert stopped.state == "pending" and "without an error" in stopped.detail
    assert "resumes from its checkpoint" in stopped.detail
    unverifiable = collect(results, running=None).cells[cell[0.4]]
    assert unverifiable.state == "running" and "not verified" in unverifiable.detail


def test_estimate_is_unknown_before_a_study_has_a_cell_finished_ok(results):
    cell = cell_ids(json.loads((results / "plan.json").read_text()))
    (results / "cells" / cell[0.1] / "summary.json").unlink()  # alpha's only ok cell
    report = collect(results, running={cell[0.4]})
    assert report.study_estimate("alpha") is None
    assert report.study_estimate("beta") == pytest.approx(40.0)
    # 0.1 now pending (alpha only), 0.4 running (alpha only): no estimate for either.
    assert report.total_estimate() == (pytest.approx(40.0), 2)
    rows = {line.split()[0]: line for line in status.render_text(report).splitlines() if line}
    assert rows["alpha"].endswith("  unknown") and rows["beta"].endswith("  40 s")
    assert rows["all"].endswith("  40 s + 2 cells unknown")


def squeue_script(directory: Path, output: str, exit_status: int = 0) -> Path:
    """A fake ``squeue`` that checks its arguments and prints ``output``."""
    directory.mkdir(exist_ok=True)
    script = directory / "squeue"
    script.write_text(
        f"""#!{sys.executable}
import sys
args = sys.argv[1:]
assert args[:2] == ["--me", "--noheader"] and args[2].startswith("--format="), args
sys.stdout.write({output!r})
sys.stderr.write("squeue: error: cannot reach slurmctld\\n" if {exit_status} else "")
sys.exit({exit_status})
"""
    )
    script.chmod(0o755)
    return directory


def test_slurm_jobs_from_a_fake_squeue(results, tmp_path, monkeypatch):
    cell = cell_ids(json.loads((results / "plan.json").read_text()))
    workdir = results.parent
    queue = (
        f"101|RUNNING|run-uuid|rule_train_wildcards_{cell[0.6]}|{workdir}\n"
        f"102|PENDING|run-uuid|rule_train_wildcards_{cell[0.7]}|{workdir}\n"
        f"103|RUNNING|run-uuid|rule_train_train|{workdir}\n"
        f"104|RUNNING|other-run|rule_train_train|{tmp_path / 'elsewhere'}\n"
        f"105|RUNNING|run-uuid|rule_tables|{workdir}\n"
        f"106|RUNNING|other-run|rule_train_wildcards_{cell[0.4]}|{tmp_path / 'elsewhere'}\n"
    )
    monkeypatch.setenv("PATH", f"{squeue_script(tmp_path / 'bin', queue)}{os.pathsep}/usr/bin")
    report = status.collect(results, local=lambda cells: set())
    assert [job.job_id for job in report.activity.slurm.jobs] == ["101", "102", "103"]
    assert report.cells[cell[0.6]].state == "running"
    assert report.cells[cell[0.6]].slurm_job == "101"
    assert report.cells[cell[0.7]].state == "pending"
    assert report.cells[cell[0.7]].detail == "queued as SLURM job 102 (PENDING)"
    # A started cell not named by any job may be the one a running bundle trains now.
    bundled = report.cells[cell[0.4]]
    assert bundled.state == "running" and "SLURM job of several cells" in bundled.detail
    assert "2 training job(s) of this workflow running, 1 queued" in status.render_text(report)


def test_a_failing_squeue_is_reported_not_raised(results, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(squeue_script(tmp_path / "bin", "", exit_status=1)))
    report = status.collect(results, local=lambda cells: set())
    assert report.activity.slurm.error == (
        "squeue failed (exit status 1: squeue: error: cannot reach slurmctld): "
        "SLURM jobs not checked"
    )
    assert "SLURM: squeue failed" in status.render_text(report)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "squeue not found" in status.collect(results).activity.slurm.error


def test_squeue_lines_of_other_workflows_and_garbage_are_ignored(tmp_path):
    results = tmp_path / "w" / "results"
    output = (
        "garbage\n"
        f"7|RUNNING|u|rule_train_train|{tmp_path / 'w'}\n"
        f"8|RUNNING|u|rule_train_train|{tmp_path / 'other'}\n"
        "9|PENDING|u|rule_train_wildcards_c1|/somewhere/else\n"
        f"10|PENDING|u|rule_train_wildcards_c1|{tmp_path / 'w'}\n"
        "11|RUNNING|u|rule_train_wildcards_c2|(null)\n"
    )
    jobs = parse_squeue(output, results)
    assert [job.job_id for job in jobs] == ["7", "10", "11"]
    assert [job.cell for job in jobs] == [None, "c1", "c2"]


def test_bundles_are_training_jobs_whatever_their_group_is_called(tmp_path):
    """Snakemake comments a group job ``rule_<group>_<its rules joined by _>``."""
    workdir = tmp_path / "w"
    comments = {
        "1": "rule_cells_train",  # --groups train=cells
        "2": "rule_my_group_check_build_train",  # two rules in one group
        "3": "rule_tables",
        "4": "rule_figure_wildcards_name=train_curves",
        "5": "rule_prepare_data_wildcards_data=x",
        "6": "rule_train_train",
    }
    output = "".join(f"{job}|RUNNING|u|{comment}|{workdir}\n" for job, comment in comments.items())
    jobs = parse_squeue(output, workdir / "results")
    assert [job.job_id for job in jobs] == ["1", "2", "6"]
    assert all(job.cell is None for job in jobs)


@pytest.mark.parametrize("launcher", ["normstudy.cli", "normstudy.warm"])
def test_a_local_training_process_is_found_by_its_outdir(results, launcher):
    """A plain ``normstudy train`` or the warm worker's client (python -m normstudy.warm
    train ..., which waits for its forked cell)."""
    cell = cell_ids(json.loads((results / "plan.json").read_text()))
    if local_training_cells(results / "cells") is None:
        pytest.skip("no /proc: processes cannot be listed here")
    argv = [launcher, "train", "--json", '{"lr": 0.4}', f"results/cells/{cell[0.4]}"]
    code = "import sys, time; time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=results.parent)
    try:
        deadline = time.monotonic() + 10
        while cell[0.4] not in local_training_cells(results / "cells"):
            assert time.monotonic() < deadline, "the process was not found"
            time.sleep(0.05)
        report = status.collect(results, slurm=lambda r: NO_SQUEUE)
        assert report.cells[cell[0.4]].state == "running"
        assert report.cells[cell[0.4]].detail == "epoch 2/4"
    finally:
        process.kill()
        process.wait()
    assert cell[0.4] not in local_training_cells(results / "cells")


def test_json_output(results, tmp_path, monkeypatch, capsys):
    cell = cell_ids(json.loads((results / "plan.json").read_text()))
    monkeypatch.setenv("PATH", str(squeue_script(tmp_path / "bin", "")))
    assert main(["status", "--results", str(results), "--json", "--study", "beta"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document["studies"]) == ["beta"]
    beta = document["studies"]["beta"]
    assert beta["cells"] == 4 and beta["estimate_seconds"] == pytest.approx(40.0)
    assert beta["counts"] == {"ok": 1, "diverged": 0, "failed": 1, "running": 0, "pending": 2}
    cells = {entry["cell_id"]: entry for entry in document["cells"]}
    assert set(cells) == {cell[lr] for lr in (0.3, 0.5, 0.6, 0.7)}
    assert cells[cell[0.3]]["state"] == "failed"
    assert cells[cell[0.3]]["log"].endswith(f"logs/train/{cell[0.3]}.log")
    assert cells[cell[0.5]]["seconds"] == 20.0
    assert document["slurm"] == {"checked": True, "error": None, "jobs": []}
    assert document["total"]["cells"] == 4


def test_a_missing_plan_names_the_file_and_the_command(tmp_path, capsys):
    assert main(["status", "--results", str(tmp_path / "results")]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "results" / "plan.json") in error
    assert f"snakemake {tmp_path / 'results' / 'plan.json'}" in error


def test_an_unknown_study_is_refused_with_the_valid_ones(results, capsys):
    assert main(["status", "--results", str(results), "--study", "gamma"]) == 2
    assert "unknown study gamma" in (error := capsys.readouterr().err) and "alpha, beta" in error


def test_watch_refreshes_until_nothing_runs_or_waits(results, monkeypatch, capsys):
    """Every refresh re-reads the tree; here each pause finishes the unfinished cells."""
    plan = json.loads((results / "plan.json").read_text())
    unfinished = [c for c in plan["cells"] if not (results / "cells" / c / "summary.json").exists()]
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        write_summary(results, unfinished.pop(), "ok", 5.0)

    monkeypatch.setenv("PATH", str(results))  # no squeue
    monkeypatch.setattr(status.time, "sleep", pause)
    assert main(["status", "--results", str(results), "--watch", "2"]) == 0
    out = capsys.readouterr().out
    # Three cells wait (0.4 stopped, 0.6, 0.7); the failed one keeps no watch going.
    assert pauses == [2.0] * 3 and out.count("plan.json at") == 4


def test_the_epoch_is_read_from_a_real_train_log(tmp_path):
    """The log lines the status parses are those training writes (normstudy.train)."""
    from normstudy.train import train_cell

    config = {"model": "mlp", "depth": 1, "width": 8, "epochs": 2, "batch_size": 64}
    train_cell(config, tmp_path / "cell", threads=1)
    progress = status.read_progress(tmp_path / "cell" / "train.log")
    assert (progress.started, progress.epoch, progress.epochs, progress.signal) == (
        True,
        2,
        2,
        None,
    )


def test_a_run_refuses_to_start_beside_training_jobs_an_ended_run_left():
    """Holding the results lock, training jobs of this workflow in squeue are orphans of a
    run that was killed: the new run would train their cells a second time beside them."""
    from normstudy.jobs import SlurmJob, SlurmQueue, leftover_refusal

    assert leftover_refusal(SlurmQueue([]), "results") is None
    jobs = [
        SlurmJob("377_3", "RUNNING", "run", "rule_train_wildcards_digits-mlp1-s0-aa", "/w"),
        SlurmJob("377_2", "RUNNING", "run", "rule_train_wildcards_digits-mlp1-s1-bb", "/w"),
        SlurmJob("380", "PENDING", "run", "rule_cells_train", "/w"),
    ]
    message = leftover_refusal(SlurmQueue(jobs), "results")
    assert "3 training job(s) of this workflow (results)" in message
    assert "377_3 running: cell digits-mlp1-s0-aa" in message
    assert "380 pending: a bundle of cells" in message
    assert "scancel 377 380" in message
