"""The ``normstudy`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_IO_ERROR = 74
"""Exit status when a file cannot be written or read (sysexits EX_IOERR), e.g. a full disk."""


def refuse(message: str) -> SystemExit:
    """Print ``message`` as one error and return the exit for bad input (status 2)."""
    print(f"normstudy: error: {message}", file=sys.stderr)
    return SystemExit(EXIT_BAD_INPUT)


def read_config_file(path: str) -> dict:
    """A cell config from a YAML or JSON file (JSON is YAML)."""
    from normstudy.inputcheck import InputError, load_yaml

    try:
        with open(path) as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise refuse(f"cannot read config {path}: {error}") from None
    try:
        data = load_yaml(text, f"config {path}")
    except InputError as error:
        raise refuse(str(error)) from None
    return {} if data is None else data


def config_from_args(args: argparse.Namespace) -> dict:
    """The cell config of ``--json`` or of the CONFIG file."""
    if args.json is not None:
        try:
            data = json.loads(args.json)
        except ValueError as error:
            raise refuse(f"--json is not valid JSON: {error}") from None
        return data
    return read_config_file(args.config)


def command_train(args: argparse.Namespace) -> int:
    if args.stop_with_snakemake:
        from normstudy.parentwatch import remember_ancestors

        remember_ancestors()
    from normstudy.gpus import claim_gpu_slot, limit_gpu_memory

    claim_gpu_slot(args.gpu_slots, cells_per_gpu=args.cells_per_gpu)
    limit_gpu_memory(args.cells_per_gpu)
    from normstudy.config import ConfigError
    from normstudy.train import completed_summary, train_cell

    config = config_from_args(args)
    outdir = Path(args.outdir)
    try:
        if not args.force and completed_summary(outdir, config) is not None:
            print(f"normstudy: {outdir} is already complete for this config (use --force)")
            return 0
        summary = train_cell(
            config,
            outdir,
            data_dir=args.data_dir,
            download=args.download,
            checkpoint=args.checkpoint,
            threads=args.threads,
            keep_checkpoint=args.keep_checkpoint,
            data_cache=args.data_cache,
            finished_copy=args.finished_copy,
            stop_with_snakemake=args.stop_with_snakemake,
        )
    except (ConfigError, FileNotFoundError) as error:
        print(f"normstudy: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"normstudy: error: {error}; the cell is not complete", file=sys.stderr)
        return EXIT_IO_ERROR
    final = summary["final"]
    print(
        f"{summary['status']}: test acc {final['test_acc']:.4f}, train acc "
        f"{final['train_acc']:.4f}, {summary['epochs_run']} epochs, "
        f"{summary['train_seconds']:.1f}s -> {outdir}"
    )
    return 0


def command_prepare_data(args: argparse.Namespace) -> int:
    from normstudy.config import ConfigError, resolve_cell_config
    from normstudy.datacache import build_cache

    try:
        config = resolve_cell_config(config_from_args(args))
        splits = build_cache(config, args.output, data_dir=args.data_dir, download=args.download)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"normstudy: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sizes = ", ".join(f"{k} {len(getattr(splits, k + '_y'))}" for k in ("train", "val", "test"))
    print(f"{splits.name}: {sizes} -> {args.output}")
    return 0


def command_aggregate(args: argparse.Namespace) -> int:
    from normstudy.io import read_json
    from normstudy.orphans import outdated_cells, outdated_warning
    from normstudy.tables import MixedVersionsError, UnreadableCellError, aggregate

    plan = read_json(args.plan)
    try:
        counts = aggregate(plan, args.cells_dir, args.out_dir)
    except (UnreadableCellError, MixedVersionsError) as error:
        print(f"normstudy: error: {error}", file=sys.stderr)
        return 1
    outdated = outdated_cells(args.cells_dir, skip=plan["cells"])
    if outdated:
        print(outdated_warning(outdated, str(Path(args.cells_dir).parent)), file=sys.stderr)
    print(f"{counts['cells']} rows ({counts['unique_cells']} cells) -> {args.out_dir}")
    return 0


def command_check_cells(args: argparse.Namespace) -> int:
    from normstudy.io import read_json, write_text_atomic
    from normstudy.tables import check_cells, damaged_cells_report

    plan = read_json(args.plan)
    damaged = check_cells(plan, args.cells_dir)
    if damaged:
        print(f"normstudy: error: {damaged_cells_report(damaged, args.cells_dir)}", file=sys.stderr)
        return 1
    cells = "".join(f"{cell}\n" for cell in plan["cells"])
    write_text_atomic(args.output, f"# {len(plan['cells'])} cells checked: intact\n{cells}")
    print(f"{len(plan['cells'])} cells checked: intact -> {args.output}")
    return 0


def command_check_build(args: argparse.Namespace) -> int:
    from normstudy.buildplan import builds_digest, stamp_path
    from normstudy.io import read_json, write_text_atomic

    plan = json.load(sys.stdin) if args.plan == "-" else read_json(args.plan)
    stamp = stamp_path(args.results, builds_digest(plan)) if args.results else None
    if stamp is not None and stamp.exists():
        # Checked while planning (or by an earlier run): no torch import, no rebuild.
        text = stamp.read_text()
    else:
        from normstudy.buildcheck import MAX_REPORTED, plan_build_problems

        problems, shapes = plan_build_problems(plan)
        if problems:
            more = len(problems) - MAX_REPORTED
            listed = "\n".join(problems[:MAX_REPORTED])
            listed += f"\n... and {more} more" if more > 0 else ""
            print(
                f"normstudy: error: {len(problems)} of {shapes} cell shapes cannot be built; "
                f"no cell was trained:\n{listed}",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        text = f"{shapes} cell shapes of {len(plan['cells'])} cells build\n"
        if stamp is not None:
            write_text_atomic(stamp, text)
    if args.output:
        write_text_atomic(args.output, text)
    print(text.strip() + (f" -> {args.output}" if args.output else ""))
    return 0


def add_config_arguments(command: argparse.ArgumentParser) -> None:
    group = command.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "config", nargs="?", help="cell config file (YAML/JSON); missing keys take defaults"
    )
    group.add_argument("--json", help="the cell config as a JSON string instead of a file")


def command_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from normstudy.comparison_specs import parse_comparisons
    from normstudy.comparisons import comparisons_arrow, comparisons_table
    from normstudy.io import read_json, write_parquet_atomic

    plan = read_json(args.plan)
    cells = pd.read_parquet(args.cells)
    studies = {
        name: (entry["axes"], parse_comparisons(entry["comparisons"], entry["axes"]))
        for name, entry in plan["studies"].items()
    }
    table = comparisons_table(cells, studies)
    write_parquet_atomic(args.output, comparisons_arrow(table))
    print(f"{len(table)} comparisons -> {args.output}")
    write_trends_and_tuning(args, plan, cells, studies, table)
    if args.power_md or args.power_csv:
        from normstudy.io import write_text_atomic
        from normstudy.power_report import power_csv, power_markdown, power_rows

        rows = power_rows(table)
        if args.power_md:
            write_text_atomic(args.power_md, power_markdown(rows, plan.get("scale")))
            print(f"power report -> {args.power_md}")
        if args.power_csv:
            write_text_atomic(args.power_csv, power_csv(rows))
            print(f"power table -> {args.power_csv}")
    return 0


def write_trends_and_tuning(args, plan: dict, cells, studies: dict, table) -> None:
    """The trend tests, the tuning table and the Markdown summary, where asked for."""
    from normstudy.comparison_summary import summary_markdown
    from normstudy.comparisons import tuning_table
    from normstudy.io import write_parquet_atomic, write_text_atomic
    from normstudy.trends import parse_trends, trends_arrow, trends_table
    from normstudy.tuning import tuning_arrow

    trend_specs = {
        name: (entry["axes"], parse_trends(entry["comparisons"], entry["axes"]))
        for name, entry in plan["studies"].items()
    }
    trends = trends_table(cells, trend_specs)
    tuning = tuning_table(cells, studies)
    if args.trends:
        write_parquet_atomic(args.trends, trends_arrow(trends))
        print(f"{len(trends)} trend tests -> {args.trends}")
    if args.tuning:
        write_parquet_atomic(args.tuning, tuning_arrow(tuning))
        print(f"{len(tuning)} tuning rows -> {args.tuning}")
    if args.summary_md:
        write_text_atomic(args.summary_md, summary_markdown(table, trends, tuning))
        print(f"summary -> {args.summary_md}")


def command_power(args: argparse.Namespace) -> int:
    import pandas as pd
    import yaml

    from normstudy.power_report import power_markdown, power_rows, seed_suggestions

    rows = power_rows(pd.read_parquet(args.comparisons))
    if not args.suggest:
        print(power_markdown(rows))
        return 0
    config = yaml.safe_load(Path(args.config).read_text())
    scale = args.scale or config.get("scale", "demo")
    print(f"# seeds for {args.comparisons} at {scale} scale; edit {args.config}:")
    for line in seed_suggestions(rows, config["studies"], scale, max_seeds=args.max_seeds):
        print(line)
    return 0


def command_ols(args: argparse.Namespace) -> int:
    from normstudy.io import write_parquet_atomic
    from normstudy.ols import trajectories

    table = trajectories(args.d, args.kappa, args.lr, args.steps, args.seed)
    write_parquet_atomic(args.output, table)
    print(f"{table.num_rows} OLS iterates -> {args.output}")
    return 0


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


def command_figure(args: argparse.Namespace) -> int:
    from normstudy.figures import render_from_dir

    result = render_from_dir(args.name, args.tables_dir, args.out_dir)
    if result.skipped is not None:
        print(f"{args.name}: skipped: {result.skipped}")
    else:
        print(f"{args.name}: " + ", ".join(str(p) for p in result.written))
    return 0


def command_slurm_profile(args: argparse.Namespace) -> int:
    from normstudy.slurm_profile import ProfileError, main

    try:
        return main(args)
    except ProfileError as error:
        print(f"normstudy slurm-profile: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


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


Subcommands = Any
"""What ``ArgumentParser.add_subparsers`` returns (argparse gives it no public type)."""


def add_train_command(commands: Subcommands) -> None:
    train = commands.add_parser("train", help="train one cell: CONFIG (YAML/JSON) -> OUTDIR")
    add_config_arguments(train)
    train.add_argument("outdir", help="the cell directory to write")
    train.add_argument("--data-dir", default=None, help="where the standard datasets live")
    train.add_argument(
        "--download", action="store_true", help="allow downloading a missing standard dataset"
    )
    train.add_argument("--checkpoint", default=None, help="checkpoint file (OUTDIR/checkpoint.pt)")
    train.add_argument("--threads", type=int, default=None, help="CPU threads (job's CPU affinity)")
    train.add_argument("--force", action="store_true", help="retrain even if OUTDIR is complete")
    train.add_argument(
        "--keep-checkpoint", action="store_true", help="keep the checkpoint after success"
    )
    train.add_argument("--data-cache", default=None, help="tensor cache from prepare-data")
    train.add_argument(
        "--finished-copy",
        default=None,
        help="keep a copy of the finished outputs in this directory; restore from it instead "
        "of training when the same config was finished by the same code",
    )
    train.add_argument(
        "--stop-with-snakemake",
        action="store_true",
        help="checkpoint and exit (status 75) when the snakemake that started this job ends",
    )
    train.add_argument(
        "--gpu-slots",
        type=int,
        default=0,
        help="GPUs of this machine; take a free one (unless CUDA_VISIBLE_DEVICES is set)",
    )
    train.add_argument(
        "--cells-per-gpu",
        type=int,
        default=1,
        help="cells that share one GPU (each takes 1/k of its memory); under SLURM the "
        "cells of one job share the job's GPUs",
    )
    train.set_defaults(func=command_train)


def add_prepare_data_command(commands: Subcommands) -> None:
    prepare = commands.add_parser("prepare-data", help="cache a cell's dataset as tensors")
    add_config_arguments(prepare)
    prepare.add_argument("output", help="cache file to write")
    prepare.add_argument("--data-dir", default=None)
    prepare.add_argument("--download", action="store_true")
    prepare.set_defaults(func=command_prepare_data)


def add_aggregate_command(commands: Subcommands) -> None:
    agg = commands.add_parser("aggregate", help="cells -> results/tables/*.parquet")
    agg.add_argument("plan", help="plan JSON written by the workflow")
    agg.add_argument("cells_dir", help="directory of cell directories")
    agg.add_argument("out_dir", help="directory of the tables")
    agg.set_defaults(func=command_aggregate)


def add_check_build_command(commands: Subcommands) -> None:
    build = commands.add_parser(
        "check-build",
        help="build every distinct cell shape of a plan once (meta device), train nothing",
    )
    build.add_argument("plan", help="plan JSON written by the workflow (- for stdin)")
    build.add_argument("output", nargs="?", help="marker file written when every cell can be built")
    build.add_argument(
        "--results",
        help="results directory: a stamp there records the plan's shapes as checked, "
        "and a later check of the same shapes by the same code only reads it",
    )
    build.set_defaults(func=command_check_build)


def add_check_cells_command(commands: Subcommands) -> None:
    check = commands.add_parser(
        "check-cells", help="report every damaged cell output at once (before the tables)"
    )
    check.add_argument("plan", help="plan JSON written by the workflow")
    check.add_argument("cells_dir", help="directory of cell directories")
    check.add_argument("output", help="marker file written when every cell is intact")
    check.set_defaults(func=command_check_cells)


def add_compare_command(commands: Subcommands) -> None:
    compare = commands.add_parser("compare", help="cells.parquet -> comparisons.parquet")
    compare.add_argument("plan", help="plan JSON written by the workflow")
    compare.add_argument("cells", help="cells.parquet")
    compare.add_argument("output", help="comparisons.parquet to write")
    compare.add_argument("--power-md", help="power report (Markdown) to write")
    compare.add_argument("--power-csv", help="power table (CSV) to write")
    compare.add_argument("--trends", help="trend tests (trends.parquet) to write")
    compare.add_argument("--tuning", help="tuning table (tuning.parquet) to write")
    compare.add_argument("--summary-md", help="Markdown summary of the comparisons to write")
    compare.set_defaults(func=command_compare)


def add_power_command(commands: Subcommands) -> None:
    power = commands.add_parser(
        "power",
        help="seeds needed for 80%% power per comparison; --suggest: the config change",
    )
    power.add_argument("comparisons", help="comparisons.parquet")
    power.add_argument(
        "--suggest", action="store_true", help="print the seed lists to set in config.yaml"
    )
    power.add_argument("--config", default="config.yaml", help="workflow config to suggest for")
    power.add_argument("--scale", choices=["demo", "paper"], help="default: the config's")
    power.add_argument(
        "--max-seeds", type=int, default=30, help="suggest no more seeds than this per study"
    )
    power.set_defaults(func=command_power)


def add_ols_command(commands: Subcommands) -> None:
    ols = commands.add_parser("ols", help="OLS with and without BN (Morwani 2020 §2)")
    ols.add_argument("output", help="ols.parquet to write")
    ols.add_argument("--d", type=int, nargs="+", default=[2, 3], help="dimensions")
    ols.add_argument("--kappa", type=float, nargs="+", default=[10, 1000])
    ols.add_argument("--lr", type=float, nargs="+", default=[0.001, 0.1, 0.5, 1.0])
    ols.add_argument("--steps", type=int, default=200)
    ols.add_argument("--seed", type=int, default=0)
    ols.set_defaults(func=command_ols)


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


def add_figure_command(commands: Subcommands) -> None:
    figure = commands.add_parser("figure", help="draw one figure from the tables")
    figure.add_argument("name", help="figure name (normstudy.figures.catalog)")
    figure.add_argument("tables_dir", help="directory of the Parquet tables")
    figure.add_argument("out_dir", help="directory to write the figure's files")
    figure.set_defaults(func=command_figure)


def add_slurm_profile_command(commands: Subcommands) -> None:
    profile = commands.add_parser(
        "slurm-profile",
        help="write your Snakemake profile `slurm` (~/.config/snakemake/slurm) from sinfo/sacctmgr",
    )
    profile.add_argument("--account", help="SLURM account (default: yours, from sacctmgr)")
    profile.add_argument("--partition", help="partition (default: one with GPUs, from sinfo)")
    profile.add_argument("--jobs", type=int, default=100, help="SLURM jobs queued at once")
    profile.add_argument("--dir", help="profile directory (default: Snakemake's user config)")
    profile.add_argument("--force", action="store_true", help="replace an existing profile")
    profile.set_defaults(func=command_slurm_profile)


COMMANDS = (
    add_train_command,
    add_prepare_data_command,
    add_aggregate_command,
    add_check_build_command,
    add_check_cells_command,
    add_compare_command,
    add_power_command,
    add_ols_command,
    add_estimate_command,
    add_status_command,
    add_clean_command,
    add_figure_command,
    add_slurm_profile_command,
)
"""Each adds one subcommand, in the order ``normstudy --help`` lists them."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="normstudy", description=__doc__)
    top.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = top.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
