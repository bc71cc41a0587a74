"""Benchmark: how training cells reach SLURM. One job per cell (the default), the SLURM
plugin's job arrays (``--slurm-array-jobs train``) and bundles of cells in one job
(``--groups train=train --group-components train=25``), side by side on the test cluster.

Usage (as root, on a machine where ``tests/slurm/cluster.py`` can run SLURM):

    python tests/slurm/cluster.py up /tmp/slurm && export SLURM_CONF=/tmp/slurm/slurm.conf
    python benchmarks/slurm_submission.py [--cells 200] [--crash-cells 50]

For each way it runs ``snakemake --profile slurm study_cells`` on a fresh working directory
of N zero-epoch cells (MLP on digits: start-up, evaluation and writes, the per-cell cost
that submission adds to) with the dataset cache in place, each cell asking for one of the
test node's two GPUs as the workflow does under SLURM, and reports

- wall time of the run (and per cell), the number of ``sbatch`` calls and the seconds the
  cells spent on their own work (evaluation, probes), next to one ``import torch``
  measured at the start: the rest of the wall time is overhead;
- scheduler load: SLURM job records (``jobcomp``) and slurmctld RPCs during the run
  (``sdiag``, reset before each run: the sum of its per-message-type counts);
- per-cell accounting: how many cells have a SLURM record of their own;
- what a crash costs: a second run of ``--crash-cells`` cells in which the first cell to
  start crashes (``tests/slurm/inject``); the cells that did not finish in that run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "slurm"))

from normstudy.config import resolve_cell_config  # noqa: E402
from normstudy.datacache import build_cache  # noqa: E402
from normstudy.grid import data_key  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
NORMSTUDY = str(Path(sys.executable).parent / "normstudy")
CELL = {"model": "mlp", "depth": 1, "width": 16, "epochs": 0, "batch_size": 32}
BUNDLES = ("--groups", "train=train", "--group-components", "train=25")
WAYS = {
    "one job per cell": (),
    "job arrays": ("--slurm-array-jobs", "train"),
    "bundles of 25": BUNDLES,
    # The same bundles with the warm worker on under SLURM (one server per SLURM job, which
    # forks the bundle's cells): what warm_worker: true buys a bundle (issue #16 item 1).
    "bundles of 25, warm worker": BUNDLES,
}
CONFIG_OF_WAY = {"bundles of 25, warm worker": {"warm_worker": True}}
"""Config values a way sets besides the default (warm_worker: local is off under SLURM)."""


def write_workdir(root: Path, cells: int, overrides: dict) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(overrides)
    config["defaults"].update(CELL)
    config["studies"] = {"cells": {"grid": {"seed": list(range(cells))}}}
    config["slurm"] = {"threads": 1, "cpu_partition": "cpu", "retries": 0}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    resolved = resolve_cell_config(CELL)
    build_cache(resolved, root / "results" / "data" / f"{data_key(resolved)}.pt")


def user_profile(home: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home)}
    subprocess.run([NORMSTUDY, "slurm-profile", "--partition", "gpu"], env=env, check=True)
    profile = home / "snakemake" / "slurm" / "config.yaml"
    profile.write_text(
        profile.read_text().replace("latency-wait: 60", "latency-wait: 5")
        + "slurm-init-seconds-before-status-checks: 2\n"
    )
    return env


def rpc_count() -> int:
    text = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    section = text.split("Remote Procedure Call statistics by message type", 1)[1]
    section = section.split("Remote Procedure Call statistics by user", 1)[0]
    return sum(int(n) for n in re.findall(r"count:(\d+)", section))


def jobcomp_records(workdir: Path) -> list[dict[str, str]]:
    conf = Path(os.environ["SLURM_CONF"]).read_text()
    path = Path(re.search(r"^JobCompLoc=(.*)$", conf, re.MULTILINE).group(1))
    records = [
        dict(field.split("=", 1) for field in line.split() if "=" in field)
        for line in path.read_text().splitlines()
    ]
    return [r for r in records if r.get("WorkDir") == str(workdir)]


def run_way(name: str, args: tuple[str, ...], cells: int, env: dict, root: Path, crash: bool):
    workdir = root / re.sub(r"\W+", "_", name) / ("crash" if crash else "plain")
    workdir.mkdir(parents=True)
    write_workdir(workdir, cells, CONFIG_OF_WAY.get(name, {}))
    run_env = dict(env)
    if crash:
        paths = [str(REPO / "tests" / "slurm" / "inject"), str(REPO / "src")]
        run_env["PYTHONPATH"] = os.pathsep.join(paths)
        run_env["NORMSTUDY_TEST_CRASH_FILE"] = str(workdir / "crash.json")
        (workdir / "crash.json").write_text(json.dumps({"after_finished": 0}))
    subprocess.run(["sdiag", "-r"], check=True, capture_output=True)
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--profile"]
    command += ["slurm", "study_cells", *args]
    start = time.monotonic()
    result = subprocess.run(command, env=run_env, capture_output=True, text=True)
    wall = time.monotonic() - start
    rpcs = rpc_count()
    output = result.stdout + result.stderr
    summaries = [
        json.loads(path.read_text())
        for path in (workdir / "results" / "cells").glob("*/summary.json")
    ]
    finished = len(summaries)
    # What the cells did themselves (evaluation, probes, writes); the rest of the wall
    # time is submission, job start and each cell's process start.
    own = sum(
        s["train_seconds"] + s["eval_seconds"] + sum(s["probe_seconds"].values()) for s in summaries
    )
    records = jobcomp_records(workdir)
    return {
        "way": name,
        "cells": cells,
        "exit": result.returncode,
        "wall_s": round(wall, 1),
        "sbatch_calls": len(
            re.findall(r"has been submitted with SLURM jobid|Submitted array job", output)
        ),
        "slurm_records": len(records),
        "rpcs": rpcs,
        "finished": finished,
        "wall_per_cell_s": round(wall / cells, 2),
        "cells_own_s": round(own, 1),
        "lost_to_crash": cells - finished - 1 if crash else None,
        "error": None if result.returncode == 0 else first_error(output),
    }


def first_error(output: str) -> str:
    """The first line that says why a run failed (sbatch's refusal, a crash)."""
    for line in output.splitlines():
        if re.search(r"sbatch failed|error|Error", line) and "Error in rule" not in line:
            return line.strip()[:300]
    return output.strip().splitlines()[-1][:300] if output.strip() else ""


def import_torch_seconds(repeats: int = 3) -> float:
    """Median wall seconds of ``python -c "import torch"``: the unit of per-cell overhead."""
    times = []
    for _ in range(repeats):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.monotonic() - start)
    return round(sorted(times)[len(times) // 2], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--crash-cells", type=int, default=50, help="0: no crash runs")
    parser.add_argument("--ways", nargs="*", default=list(WAYS))
    parser.add_argument("--crash-only", action="store_true", help="only the crash runs")
    parser.add_argument("--keep", help="work in this directory and keep it (to read the logs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slurm-bench-") as tmp:
        root = Path(args.keep or tmp)
        env = user_profile(root / "xdg")
        rows = []
        print(json.dumps({"import_torch_s": import_torch_seconds()}), flush=True)
        for name in [] if args.crash_only else args.ways:
            rows.append(run_way(name, WAYS[name], args.cells, env, root, crash=False))
            print(json.dumps(rows[-1]), flush=True)
        for name in args.ways if args.crash_cells else []:
            rows.append(run_way(name, WAYS[name], args.crash_cells, env, root, crash=True))
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
