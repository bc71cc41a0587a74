"""Commands about a results directory: ``status`` and ``clean``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from normstudy.commands.common import EXIT_BAD_INPUT, Subcommands, read_config_file, refuse


def command_status(args: argparse.Namespace) -> int:
    from normstudy.status import StatusError, watch

    try:
        watch(
            Path(args.results),
            args.study,
            interval=args.watch,
            as_json=args.json,
            every_cell=args.all,
        )
    except StatusError as error:
        print(f"normstudy: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # the way out of --watch
        pass
    return 0


def command_clean(args: argparse.Namespace) -> int:
    """List (or with --remove delete) the cells under RESULTS that no plan of the config uses
    at any scale, nor the last run's ``plan.json``: the old cells of a version bump."""
    from normstudy.grid import StudyError
    from normstudy.io import read_json
    from normstudy.orphans import cells_of_every_scale, outdated_cells, remove, unused_cells
    from normstudy.runlock import lock_results

    workflow_config = read_config_file(args.configfile)
    results = Path(args.results or workflow_config.get("results", "results"))
    try:
        scales = cells_of_every_scale(workflow_config)
    except StudyError as error:
        raise refuse(f"{args.configfile}: {error}") from None
    keep = set().union(*scales.values())
    plan_path = results / "plan.json"
    if plan_path.exists():
        # The last run's plan (maybe with --config overrides), but not its cells made by
        # versions that are no longer current: no run plans those again.
        last = set(read_json(plan_path)["cells"])
        keep |= last - set(outdated_cells(results / "cells", skip=keep))
    if args.remove and results.is_dir():
        # A running workflow may train cells of a config other than this file's.
        holder = lock_results(results)
        if holder:
            raise refuse(f"{results} is in use by a workflow run ({holder}); nothing removed")
    unused = unused_cells(results, keep)
    counts = ", ".join(f"{scale} {len(cells)}" for scale, cells in scales.items())
    print(
        f"{len(unused)} cell(s) under {results} in no plan of {args.configfile} (cells per "
        f"scale: {counts}) nor of {plan_path}{':' if unused else '.'}"
    )
    for cell in unused:
        print(f"  {cell.cell_id}  {cell.reason}  ({len(cell.paths)} path(s))")
    if not unused:
        return 0
    if args.remove:
        removed = remove(unused)
        print(f"removed {removed} path(s) of {len(unused)} cell(s)")
    else:
        print("nothing removed: --remove deletes their directories, checkpoints, logs, benchmarks")
    return 0


def add_status_command(commands: Subcommands) -> None:
    status = commands.add_parser(
        "status",
        help="cells ok, diverged, failed, running and pending per study, and the time left",
        description="Cells ok, diverged, failed, running and pending per study of "
        "RESULTS/plan.json, and an estimate of the time left (normstudy.status).",
    )
    status.add_argument("--results", default="results", help="the results directory (results)")
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=10.0,
        default=None,
        metavar="SECONDS",
        help="refresh every SECONDS (10) until Ctrl-C or nothing is running or pending",
    )
    status.add_argument("--study", nargs="+", default=None, help="only these studies")
    status.add_argument("--json", action="store_true", help="one JSON document per refresh")
    status.add_argument("--all", action="store_true", help="list every cell, not only the notable")
    status.set_defaults(func=command_status)


def add_clean_command(commands: Subcommands) -> None:
    clean = commands.add_parser(
        "clean",
        help="list (--remove: delete) cells no plan uses, e.g. outdated by a version bump",
        description="Cells under RESULTS used by no plan of CONFIGFILE at any scale nor by "
        "RESULTS/plan.json (the last run's): the old cells of a behaviour version bump, or of "
        "an edited config. Lists them; --remove deletes their directories, checkpoints, "
        "finished copies, logs and benchmarks.",
    )
    clean.add_argument(
        "--results", default=None, help="the results directory (the config's results: or results)"
    )
    clean.add_argument("--configfile", default="config.yaml", help="the workflow config")
    clean.add_argument("--remove", action="store_true", help="delete them (default: list only)")
    clean.set_defaults(func=command_clean)
