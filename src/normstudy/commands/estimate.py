"""``normstudy estimate``: what a study costs, from counted FLOPs and timed steps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from normstudy.commands.common import EXIT_BAD_INPUT, Subcommands, config_from_args


def estimate_arguments_problem(args: argparse.Namespace) -> str | None:
    if (args.config is None) == (args.json is None):
        return "give the workflow config as a file or with --json"
    if args.assume_tflops is not None and not (
        args.assume_tflops > 0 and 0 < args.utilisation <= 1
    ):
        return "--assume-tflops must be > 0 and --utilisation in (0, 1]"
    return None


def estimate_progress(flops_only: bool):
    """A progress callback of :func:`normstudy.estimate.estimate_plan`: one line per group."""

    def progress(done: int, total: int, group) -> None:
        timing = (
            ""
            if flops_only
            else f"{group.step_seconds:.3g} s/step{' (scaled)' if group.scaled else ''}, "
            f"{group.hours:.3g} h, "
        )
        print(
            f"[{done}/{total}] {group.dataset} {group.model}{group.depth or ''} "
            f"w{group.width} {group.norm} {group.freeze} batch {group.batch_size}: "
            f"{group.cells} cells, {timing}{group.pflop:.3g} PFLOP",
            file=sys.stderr,
            flush=True,
        )

    return progress


def command_estimate(args: argparse.Namespace) -> int:
    from normstudy.grid import StudyError, plan_studies

    problem = estimate_arguments_problem(args)
    if problem:
        print(f"normstudy: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    workflow_config = config_from_args(args)
    if args.scale is not None:
        workflow_config["scale"] = args.scale
    try:
        plan = plan_studies(workflow_config, only=args.study)
    except StudyError as error:
        print(f"normstudy: invalid study config:\n{error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from normstudy.estimate import estimate_plan

    estimate = estimate_plan(
        plan,
        steps=args.steps,
        step_budget=args.step_budget,
        threads=args.threads,
        timed=not args.flops_only,
        progress=estimate_progress(args.flops_only),
    )
    print(write_estimate(args, plan, estimate))
    return 0


def write_estimate(args: argparse.Namespace, plan, estimate) -> str:
    """Write groups.csv, studies.csv, cells.csv and studies.txt into ``args.out_dir``;
    returns the summary (studies.txt)."""
    from dataclasses import asdict

    import pandas as pd

    from normstudy.estimate import assumed_hours
    from normstudy.io import write_text_atomic

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = pd.DataFrame([asdict(group) for group in estimate.groups])
    studies = pd.DataFrame(estimate.study_rows(plan))
    assumption = ""
    if args.assume_tflops is not None:
        studies["assumed_hours"] = [
            assumed_hours(pflop, args.assume_tflops, args.utilisation) for pflop in studies["pflop"]
        ]
        assumption = (
            f"; assumed_hours = PFLOPs / ({args.assume_tflops:g} TFLOP/s x "
            f"{args.utilisation:g} utilisation)"
        )
    write_text_atomic(out / "groups.csv", groups.to_csv(index=False))
    write_text_atomic(out / "studies.csv", studies.to_csv(index=False))
    device = groups["device"].iloc[0] if len(groups) else "?"
    # Per cell, for the time requests of SLURM jobs (normstudy.cluster.measured_minutes).
    cells = pd.DataFrame(
        [
            {"cell_id": cell, "hours": hours, "device": "none" if args.flops_only else device}
            for cell, (hours, _) in estimate.cost_of_cell.items()
        ],
        columns=["cell_id", "hours", "device"],
    )
    write_text_atomic(out / "cells.csv", cells.to_csv(index=False))
    summary = estimate_summary(args, plan, groups, studies, assumption)
    write_text_atomic(out / "studies.txt", summary)
    return summary


def estimate_summary(args: argparse.Namespace, plan, groups, studies, assumption: str) -> str:
    device = groups["device"].iloc[0] if len(groups) else "?"
    threads = groups["threads"].iloc[0] if len(groups) else "?"
    what = (
        "FLOPs counted, nothing timed"
        if args.flops_only
        else f"{int(groups['scaled'].sum())} of them timed at a reduced batch and scaled"
    )
    where = "" if args.flops_only else f" on {device} ({threads} threads)"
    # --flops-only times nothing: its hours column is all NaN (kept in studies.csv only)
    shown = studies.drop(columns="hours") if args.flops_only else studies
    return (
        f"Estimated {plan.scale}-scale cost{where}, "
        f"{len(groups)} cost groups measured, {what}{assumption}:\n\n"
        + shown.to_string(
            index=False,
            float_format=lambda value: f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}",
        )
        + "\n"
    )


def add_estimate_command(commands: Subcommands) -> None:
    estimate = commands.add_parser(
        "estimate",
        help="hours a study takes on this device, from measured step times (normstudy.estimate)",
    )
    estimate.add_argument("config", nargs="?", help="workflow config (config.yaml)")
    estimate.add_argument("--json", help="the workflow config as a JSON string instead")
    estimate.add_argument(
        "out_dir", help="where groups.csv, studies.csv, cells.csv and studies.txt go"
    )
    estimate.add_argument("--scale", choices=["demo", "paper"], default=None)
    estimate.add_argument("--study", nargs="+", default=None, help="only these studies")
    estimate.add_argument("--steps", type=int, default=3, help="timed steps per group")
    estimate.add_argument(
        "--step-budget",
        type=float,
        default=5.0,
        help="seconds a timed step may take; slower ones are timed at a smaller batch",
    )
    estimate.add_argument("--threads", type=int, default=None)
    estimate.add_argument(
        "--flops-only", action="store_true", help="count FLOPs only; time nothing (fast)"
    )
    estimate.add_argument(
        "--assume-tflops",
        type=float,
        default=None,
        help="also give hours on an assumed device of this peak rate (TFLOP/s, e.g. 19.5 for "
        "an A100's FP32), from the counted FLOPs (normstudy.estimate.assumed_hours)",
    )
    estimate.add_argument(
        "--utilisation",
        type=float,
        default=0.3,
        help="fraction of --assume-tflops the training achieves (default 0.3)",
    )
    estimate.set_defaults(func=command_estimate)
