"""Benchmark: the workflow's dry run and job start-up against Snakemake's own floor.

Usage:
    python benchmarks/workflow_scale.py [--sizes 1000 10000 100000] [--repeats 1]
    python benchmarks/workflow_scale.py --quick      # 200 jobs, one repeat (CI smoke run)

For every size N it writes, into a temporary directory,

- the project's config (``config.yaml`` with its studies replaced by one study of N cells:
  depth x freeze x lr x seed), run with the project's ``Snakefile``;
- the floor: a trivial Snakefile with the same number of jobs (one rule with one output
  per job and one aggregate over all of them), i.e. what Snakemake itself costs;

and times, alternating floor and project so that both see the same machine load,

- ``snakemake -n`` (parse + DAG of every job; wall time and max RSS), and
- the start of one job: ``snakemake -n --target-jobs <one job> --allowed-rules <its rule>
  --mode remote``, which is what the SLURM executor runs inside every job before it trains
  (it parses the whole workflow but builds the DAG of that job only, and skips what only
  the process the user started does).

Ratios are project / floor from the same run. Wall and CPU (user + system) seconds and
the maximum resident set size of the ``snakemake`` process (see ``process_usage.py``) are medians
over ``--repeats``; on a loaded machine the CPU-time ratio is the steadier one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from process_usage import measured_run  # noqa: E402

from normstudy.buildplan import builds_digest, stamp_path  # noqa: E402
from normstudy.grid import data_key, plan_document, plan_studies  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
QUICK_SIZES = (200,)
FULL_SIZES = (1000, 10000, 100000)

FLOOR_SNAKEFILE = '''\
"""Snakemake's floor: one rule with one output per job and one aggregate over all."""

N = int(config["jobs"])


rule all:
    input:
        "aggregate.txt",


rule aggregate:
    input:
        expand("out/{i}.txt", i=range(N)),
    output:
        "aggregate.txt",
    shell:
        "cat {input} > {output}"


rule job:
    output:
        "out/{i}.txt",
    shell:
        "echo {wildcards.i} > {output}"
'''


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_mb: float


def study_of_size(cells: int) -> dict:
    """One study of exactly ``cells`` cells: depth x freeze x lr x seed (multiples of 100).

    The depths differ in size, so the jobs differ in memory and run time as in a real grid.
    """
    if cells % 100:
        raise SystemExit(
            f"sizes must be multiples of 100 (5 depths x 2 freezes x 10 lrs); got {cells}"
        )
    return {
        "grid": {
            "depth": [14, 20, 32, 56, 110],
            "freeze": ["all", "norm"],
            "lr": [round(0.02 * i, 2) for i in range(1, 11)],
            "seed": list(range(cells // 100)),
        },
        "set": {"dataset": "cifar10", "model": "resnet", "epochs": 160},
    }


def project_workdir(root: Path, cells: int) -> tuple[Path, str]:
    """A workdir holding the project config with ``cells`` cells, and one cell's id.

    The data cache that cell's training job reads is created empty with its manifest, and
    the build check's marker, as they exist when a SLURM job starts (``prepare_data`` and
    ``check_build`` ran first).
    """
    workdir = root / f"project-{cells}"
    workdir.mkdir()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["studies"] = {"scale": study_of_size(cells)}
    # The project refuses grids above max_cells unless told: measure the plan as asked.
    config["max_cells"] = max(int(config.get("max_cells", 0)), cells)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    plan = plan_studies(config)
    if len(plan.cells) != cells:
        raise RuntimeError(f"the generated study has {len(plan.cells)} cells, not {cells}")
    cell, settings = next(iter(plan.cells.items()))
    data = workdir / config["results"] / "data" / f"{data_key(settings)}.pt"
    data.parent.mkdir(parents=True)
    data.touch()
    manifest = {
        "key": data_key(settings),
        "digest": "",
        "sha256": hashlib.sha256(b"").hexdigest(),
        "size": 0,
        "mtime_ns": data.stat().st_mtime_ns,
    }
    data.with_suffix(".json").write_text(json.dumps(manifest))
    (workdir / config["results"] / "plan_builds.txt").write_text("checked\n")
    # The stamp of an earlier build check of these shapes: otherwise the first project run
    # builds every shape in a child process (torch: seconds, ~900 MB), which wait4 counts
    # in its CPU time and max RSS, and which repeated dry runs never pay.
    stamp = stamp_path(workdir / config["results"], builds_digest(plan_document(plan)))
    stamp.parent.mkdir(parents=True)
    stamp.write_text("benchmark: shapes taken as checked\n")
    return workdir, cell


def floor_workdir(root: Path, jobs: int) -> Path:
    workdir = root / f"floor-{jobs}"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(FLOOR_SNAKEFILE)
    (workdir / "config.yaml").write_text(yaml.safe_dump({"jobs": jobs}))
    return workdir


def timed(command: list[str], workdir: Path, env: dict[str, str]) -> Run:
    """Wall time, CPU time and max RSS of ``command``; raises with its output if it fails."""
    usage = measured_run(command, cwd=workdir, env=env)
    if "Job stats:" not in usage.output:
        raise RuntimeError(f"{' '.join(command)} planned no jobs:\n{usage.output}")
    return Run(usage.seconds, usage.cpu_seconds, usage.max_rss_mb)


def commands(snakefile: Path, rule: str, wildcards: str) -> dict[str, list[str]]:
    """Both invocations, run from the workdir that holds ``config.yaml``."""
    base = [SNAKEMAKE, "-s", str(snakefile), "--configfile", "config.yaml"]
    return {
        "dry_run": [*base, "-n"],
        # --mode remote as the SLURM executor starts each job: Snakemake and the workflow
        # skip what only the process the user started does.
        "job_start": [
            *base,
            *("-n", "--target-jobs", f"{rule}:{wildcards}", "--allowed-rules", rule),
            *("--mode", "remote"),
        ],
    }


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.cpu_seconds for r in runs),
        statistics.median(r.max_rss_mb for r in runs),
    )


def measure(size: int, repeats: int, root: Path, env: dict[str, str]) -> dict[str, dict]:
    project_dir, cell = project_workdir(root, size)
    floor_dir = floor_workdir(root, size)
    variants = {
        "floor": commands(floor_dir / "Snakefile", "job", "i=0"),
        "project": commands(REPO / "Snakefile", "train", f"cell={cell}"),
    }
    workdirs = {"floor": floor_dir, "project": project_dir}
    runs: dict[str, dict[str, list[Run]]] = {
        name: {kind: [] for kind in kinds} for name, kinds in variants.items()
    }
    for repeat in range(repeats):
        order = ["floor", "project"] if repeat % 2 == 0 else ["project", "floor"]
        for kind in ("dry_run", "job_start"):
            for name in order:
                runs[name][kind].append(timed(variants[name][kind], workdirs[name], env))
    return {
        name: {kind: median_run(kind_runs) for kind, kind_runs in by_kind.items()}
        for name, by_kind in runs.items()
    }


HEADER = (
    f"{'jobs':>7} | {'dry run: floor s':>16} {'project s':>9} {'ratio':>5} "
    f"{'floor cpu s':>11} {'project cpu s':>13} {'ratio':>5} | "
    f"{'floor MB':>8} {'project MB':>10} {'ratio':>5} | "
    f"{'job start: floor s':>18} {'project s':>9} {'ratio':>5}"
)


def print_row(size: int, result: dict[str, dict]) -> None:
    floor, project = result["floor"], result["project"]
    dry_floor, dry_project = floor["dry_run"], project["dry_run"]
    start_floor, start_project = floor["job_start"], project["job_start"]
    print(
        f"{size:>7} | {dry_floor.seconds:>16.1f} {dry_project.seconds:>9.1f} "
        f"{dry_project.seconds / dry_floor.seconds:>5.2f} "
        f"{dry_floor.cpu_seconds:>11.1f} {dry_project.cpu_seconds:>13.1f} "
        f"{dry_project.cpu_seconds / dry_floor.cpu_seconds:>5.2f} | "
        f"{dry_floor.max_rss_mb:>8.0f} {dry_project.max_rss_mb:>10.0f} "
        f"{dry_project.max_rss_mb / dry_floor.max_rss_mb:>5.2f} | "
        f"{start_floor.seconds:>18.1f} {start_project.seconds:>9.1f} "
        f"{start_project.seconds / start_floor.seconds:>5.2f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict[int, dict[str, dict]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(FULL_SIZES))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="200 jobs, one repeat (CI)")
    args = parser.parse_args(argv)
    sizes = list(QUICK_SIZES) if args.quick else args.sizes
    repeats = 1 if args.quick else args.repeats
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results = {}
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="workflow_scale-") as tmp:
        for size in sizes:
            results[size] = measure(size, repeats, Path(tmp), env)
            print_row(size, results[size])
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return results


if __name__ == "__main__":
    main()
