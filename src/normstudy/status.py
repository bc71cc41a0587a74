"""``normstudy status``: how far the workflow of a results directory has come.

For every study of ``results/plan.json`` (written by the workflow's ``plan`` rule) each
cell is

- ``ok`` or ``diverged``: its ``summary.json`` says so;
- ``running``: a ``normstudy train`` process on this machine or a SLURM job trains it
  (:mod:`normstudy.jobs`); the epoch comes from the cell's ``train.log``;
- ``failed``: not running, and its job log (``results/logs/train/<cell>.log``, rewritten
  by every attempt) shows an error;
- ``pending``: the rest, including cells queued in SLURM and cells that stopped without an
  error (killed, or checkpointed after a signal), which resume on the next run.

Where neither processes nor SLURM jobs can be listed, a started cell counts as running.
The time left is an estimate from the training and evaluation seconds of finished cells.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from normstudy.behaviour import describe_outdated
from normstudy.jobs import SlurmQueue, local_training_cells, slurm_queue
from normstudy.orphans import outdated_cells

STATES = ("ok", "diverged", "failed", "running", "pending")
ERROR_LINE = re.compile(r"^(normstudy: error: .*|[\w.]*(Error|Exception|Interrupt)\b.*)$")
LOG_EPOCH = re.compile(r" epoch (\d+)/(\d+) step \d+ ")
LOG_START = re.compile(r" start .*, (\d+) epochs x \d+ steps$")
LOG_RESUMED = re.compile(r" resumed from .* at epoch (\d+) step \d+$")
LOG_SIGNAL = re.compile(r" signal (\d+) at step \d+: checkpoint written")
MAX_LISTED = 20
"""Cells listed per state without ``--all``."""


class StatusError(Exception):
    """No readable ``plan.json`` (the message says how to make one), or an unknown study."""


@dataclass
class CellState:
    cell_id: str
    studies: list[str]
    state: str
    detail: str = ""
    epoch: int | None = None
    epochs: int | None = None
    log: str | None = None
    """The file to read about a failed cell."""
    seconds: float | None = None
    """Training and evaluation seconds of a finished cell."""
    slurm_job: str | None = None

    def work_left(self) -> float:
        """The fraction of the cell's training still to do (0 for finished or failed)."""
        if self.state == "pending":
            return 1.0
        if self.state != "running":
            return 0.0
        if self.epoch is None or not self.epochs:
            return 1.0
        return max(0.0, 1.0 - self.epoch / self.epochs)


@dataclass
class Progress:
    """What a cell's ``train.log`` says: the epochs reached and planned, and whether its
    last run checkpointed and exited after a signal (SLURM's time limit or preemption)."""

    started: bool = False
    epoch: int | None = None
    epochs: int | None = None
    signal: int | None = None

    def text(self) -> str:
        if not self.started:
            return "starting"  # no train.log yet: loading data, building the model
        if self.epoch is None:
            return "epoch ?"
        return f"epoch {self.epoch}/{self.epochs}" if self.epochs else f"epoch {self.epoch}"


def read_progress(path: Path) -> Progress:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return Progress()
    progress = Progress(started=True)
    for line in lines:
        if match := LOG_EPOCH.search(line):
            progress.epoch, progress.epochs = int(match[1]), int(match[2])
        elif match := LOG_START.search(line):
            progress.epoch, progress.epochs, progress.signal = 0, int(match[1]), None
        elif match := LOG_RESUMED.search(line):
            progress.epoch, progress.signal = int(match[1]), None
        elif line.endswith("training starts over"):
            progress.epoch, progress.signal = 0, None
        elif match := LOG_SIGNAL.search(line):
            progress.signal = int(match[1])
    return progress


def failure(path: Path) -> str | None:
    """The error a job log shows (its last error line), or None."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    errors = [line for line in text.splitlines() if ERROR_LINE.match(line)]
    if errors:
        return errors[-1][:200]
    return "a Python traceback" if "Traceback (most recent call last)" in text else None


@dataclass
class Activity:
    """What is running now: ``local`` None when processes cannot be listed."""

    local: set[str] | None
    slurm: SlurmQueue

    @property
    def checked(self) -> bool:
        """Whether a cell that runs nowhere we can see is known not to run."""
        return self.local is not None or self.slurm.checked

    def bundles_running(self) -> bool:
        return any(job.running for job in self.slurm.bundles())


def finished_state(cell: CellState, summary_path: Path) -> CellState:
    try:
        summary = json.loads(summary_path.read_text())
        if summary["status"] not in ("ok", "diverged"):
            raise ValueError(f"status {summary['status']!r}")
        cell.state = summary["status"]
        cell.seconds = float(summary["train_seconds"]) + float(summary["eval_seconds"])
        cell.epoch, cell.epochs = summary.get("epochs_run"), summary.get("epochs_planned")
    except (OSError, ValueError, KeyError, TypeError) as error:
        cell.state, cell.log = "failed", str(summary_path)
        cell.detail = f"unreadable summary.json ({error}): delete the cell directory, run again"
    return cell


def classify(results: Path, cell: CellState, activity: Activity) -> CellState:
    summary = results / "cells" / cell.cell_id / "summary.json"
    if summary.exists():
        return finished_state(cell, summary)
    progress = read_progress(results / "cells" / cell.cell_id / "train.log")
    cell.epoch, cell.epochs = progress.epoch, progress.epochs
    job = activity.slurm.by_cell.get(cell.cell_id)
    if job is not None:
        cell.slurm_job = job.job_id
    checkpoint = results / "checkpoints" / f"{cell.cell_id}.pt"
    if activity.local is not None and cell.cell_id in activity.local:
        cell.state, cell.detail = "running", progress.text()
    elif job is not None and job.running:
        cell.state, cell.detail = "running", f"{progress.text()}, SLURM job {job.job_id}"
    elif job is not None:
        cell.state, cell.detail = "pending", f"queued as SLURM job {job.job_id} ({job.state})"
    elif (reason := failure(log := results / "logs" / "train" / f"{cell.cell_id}.log")) is not None:
        cell.state, cell.detail, cell.log = "failed", reason, str(log)
    elif not (progress.started or checkpoint.exists()):
        cell.state = "pending"
    elif progress.signal is not None:
        cell.state = "pending"
        cell.detail = (
            f"stopped by signal {progress.signal} at {progress.text()}: resumes from its "
            "checkpoint on the next run"
        )
    elif not activity.checked:
        cell.state = "running"
        cell.detail = f"{progress.text()} (not verified: processes and SLURM jobs not listed)"
    elif activity.bundles_running():
        cell.state = "running"
        cell.detail = f"{progress.text()}, in a running SLURM job of several cells"
    else:
        cell.state = "pending"
        resume = "resumes from its checkpoint" if checkpoint.exists() else "starts over"
        cell.detail = (
            f"started, stopped at {progress.text()} without an error (killed?); {resume} "
            "on the next run"
        )
    return cell


@dataclass
class Report:
    results: Path
    studies: dict[str, list[str]]
    """Study -> its cell ids, in plan order."""
    cells: dict[str, CellState]
    activity: Activity
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))
    outdated: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    """Finished cells on disk, not in the plan, made by versions no longer current."""

    def counts(self, cell_ids: list[str]) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for cell in cell_ids:
            state = self.cells[cell].state
            counts[state] = counts.get(state, 0) + 1
        return counts

    @property
    def running(self) -> int:
        return sum(cell.state == "running" for cell in self.cells.values())

    @property
    def parallel(self) -> int:
        """Cells that run at once: those running now, at least one."""
        return max(1, self.running)

    def mean_seconds(self, study: str) -> float | None:
        """Mean seconds of the study's cells that finished ok: a diverged cell stops early,
        so its time says little about a cell that trains to the end."""
        done = [self.cells[c] for c in self.studies[study]]
        seconds = [c.seconds for c in done if c.state == "ok" and c.seconds is not None]
        seconds = [s for s in seconds if math.isfinite(s)]
        return sum(seconds) / len(seconds) if seconds else None

    def study_estimate(self, study: str) -> float | None:
        """Seconds until the study's cells finish, if all workers ran them; None if unknown."""
        work = sum(self.cells[c].work_left() for c in self.studies[study])
        if work == 0:
            return 0.0
        mean = self.mean_seconds(study)
        return None if mean is None else mean * work / self.parallel

    def total_estimate(self) -> tuple[float, int]:
        """Seconds until every cell finishes, from the cells whose study has a finished
        cell, and the number of unfinished cells without an estimate."""
        means = {study: self.mean_seconds(study) for study in self.studies}
        seconds, unknown = 0.0, 0
        for cell in self.cells.values():
            if cell.work_left() == 0:
                continue
            known = [means[s] for s in cell.studies if means[s] is not None]
            if known:
                seconds += known[0] * cell.work_left()
            else:
                unknown += 1
        return seconds / self.parallel, unknown

    @property
    def active(self) -> bool:
        """Whether anything is running or pending."""
        return any(cell.state in ("running", "pending") for cell in self.cells.values())


def read_plan(results: Path) -> dict:
    path = results / "plan.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StatusError(
            f"no plan at {path}: it is written by any `snakemake` run of the workflow, or "
            f"alone by `snakemake {path}` (run it where the workflow runs)"
        ) from None
    except (OSError, ValueError) as error:
        raise StatusError(f"cannot read {path} ({error}): run `snakemake {path}` again") from None


def collect(
    results: Path,
    studies: list[str] | None = None,
    *,
    local: Callable[[Path], set[str] | None] = local_training_cells,
    slurm: Callable[[Path], SlurmQueue] = slurm_queue,
) -> Report:
    """The state of every cell of ``studies`` (default: all) of the plan in ``results``.

    Raises :class:`StatusError` without a readable plan or for a study it does not have.
    """
    plan = read_plan(results)
    wanted = list(plan["studies"]) if studies is None else studies
    unknown = [name for name in wanted if name not in plan["studies"]]
    if unknown:
        raise StatusError(
            f"unknown study {', '.join(unknown)}; studies of {results / 'plan.json'}: "
            f"{', '.join(plan['studies'])}"
        )
    members = {name: list(plan["studies"][name]["cells"]) for name in wanted}
    activity = Activity(local(results / "cells"), slurm(results))
    cells: dict[str, CellState] = {}
    for name, cell_ids in members.items():
        for cell_id in cell_ids:
            cells.setdefault(cell_id, CellState(cell_id, [], "pending")).studies.append(name)
    for cell in cells.values():
        classify(results, cell, activity)
    outdated = outdated_cells(results / "cells", skip=plan["cells"])
    return Report(results, members, cells, activity, outdated=outdated)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if 0 < seconds < 1:
        return "< 1 s"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def table(rows: list[list[str]], right: bool = True) -> list[str]:
    """Aligned columns: the first left-aligned, the others right-aligned if ``right``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            value.rjust(width) if right and i else value.ljust(width)
            for i, (value, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def render_text(report: Report, every_cell: bool = False) -> str:
    rows = [["study", "cells", *STATES, "time left (estimate)"]]
    for study, cell_ids in report.studies.items():
        counts = report.counts(cell_ids)
        estimate = duration(report.study_estimate(study))
        rows.append([study, str(len(cell_ids)), *(str(counts[s]) for s in STATES), estimate])
    counts = report.counts(list(report.cells))
    rows.append(
        ["all (unique)", str(len(report.cells)), *(str(counts[s]) for s in STATES)]
        + [total_text(report)]
    )
    lines = [f"{report.results}/plan.json at {report.time}", "", *table(rows), ""]
    listing = cell_lines(report, every_cell)
    lines.extend([*listing, ""] if listing else [])
    outdated = outdated_lines(report, every_cell)
    lines.extend([*outdated, ""] if outdated else [])
    lines.append(
        "Time left is an estimate: mean training+evaluation seconds of the study's cells "
        f"finished ok x cells left\n(running ones by their epochs left) / {report.parallel} "
        "running at once; start-up, queueing and failed cells not included."
    )
    lines.extend(activity_lines(report.activity))
    return "\n".join(lines) + "\n"


def total_text(report: Report) -> str:
    seconds, unknown = report.total_estimate()
    if not unknown:
        return duration(seconds)
    cells = f"{unknown} cell{'' if unknown == 1 else 's'}"
    return "unknown" if seconds == 0 else f"{duration(seconds)} + {cells} unknown"


def cell_lines(report: Report, every_cell: bool) -> list[str]:
    """One line per failed, running or noteworthy pending cell (``every_cell``: every
    cell), at most :data:`MAX_LISTED` per state."""
    rows, more = [], []
    for state in STATES:
        cells = [
            cell
            for cell in report.cells.values()
            if cell.state == state and (every_cell or state in ("failed", "running") or cell.detail)
        ]
        limit = len(cells) if every_cell else MAX_LISTED
        for cell in cells[:limit]:
            detail = duration(cell.seconds) if cell.seconds is not None else cell.detail
            where = f"; read {cell.log}" if cell.log else ""
            rows.append([state, cell.cell_id, ",".join(cell.studies), detail + where])
        if len(cells) > limit:
            more.append(f"... and {len(cells) - limit} more {state} (--all lists every cell)")
    return [*table(rows, right=False), *more] if rows else more


def outdated_lines(report: Report, every_cell: bool) -> list[str]:
    """The cells outdated by a version bump: kept on disk, replaced in the plan."""
    if not report.outdated:
        return []
    lines = [
        f"{len(report.outdated)} cell(s) on disk were made by versions no longer current "
        "(kept, not in the tables; `normstudy clean` lists them, --remove deletes them):"
    ]
    cells = list(report.outdated.items())
    limit = len(cells) if every_cell else MAX_LISTED
    rows = [["outdated", cell, describe_outdated(changed)] for cell, changed in cells[:limit]]
    lines.extend(table(rows, right=False))
    if len(cells) > limit:
        lines.append(f"... and {len(cells) - limit} more outdated (--all lists every cell)")
    return lines


def activity_lines(activity: Activity) -> list[str]:
    lines = []
    if activity.local is None:
        lines.append("Processes: cannot be listed here (no /proc).")
    queue = activity.slurm
    if not queue.checked:
        lines.append(f"SLURM: {queue.error}.")
    else:
        running = sum(job.running for job in queue.jobs)
        bundles = len(queue.bundles())
        lines.append(
            f"SLURM: {running} training job(s) of this workflow running, "
            f"{len(queue.jobs) - running} queued ({bundles} of them bundles of several cells)."
        )
    return lines


def report_json(report: Report) -> dict:
    total, unknown = report.total_estimate()
    return {
        "results": str(report.results),
        "time": report.time,
        "studies": {
            study: {
                "cells": len(cell_ids),
                "counts": report.counts(cell_ids),
                "estimate_seconds": report.study_estimate(study),
            }
            for study, cell_ids in report.studies.items()
        },
        "total": {
            "cells": len(report.cells),
            "counts": report.counts(list(report.cells)),
            "estimate_seconds": None if unknown and total == 0 else total,
            "cells_without_estimate": unknown,
            "running_at_once": report.parallel,
        },
        "cells": [asdict(cell) for cell in report.cells.values()],
        "outdated": {
            cell: {part: list(versions) for part, versions in changed.items()}
            for cell, changed in report.outdated.items()
        },
        "processes_listed": report.activity.local is not None,
        "slurm": {
            "checked": report.activity.slurm.checked,
            "error": report.activity.slurm.error,
            "jobs": [job.as_dict() for job in report.activity.slurm.jobs],
        },
    }


def show(report: Report, as_json: bool, every_cell: bool) -> str:
    if as_json:
        return json.dumps(report_json(report), sort_keys=True) + "\n"
    return render_text(report, every_cell)


def watch(
    results: Path,
    studies: list[str] | None,
    *,
    interval: float | None,
    as_json: bool = False,
    every_cell: bool = False,
) -> None:
    """Print the status once, or every ``interval`` seconds until nothing runs or waits."""
    while True:
        report = collect(results, studies)
        text = show(report, as_json, every_cell)
        if interval is not None and sys.stdout.isatty() and not as_json:
            text = "\033[H\033[2J" + text  # redraw in place on a terminal
        sys.stdout.write(text)
        sys.stdout.flush()
        if interval is None or not report.active:
            return
        time.sleep(interval)
