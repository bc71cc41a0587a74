"""The other commands: ``ols``, ``figure`` and ``slurm-profile``."""

from __future__ import annotations

import argparse
import sys

from normstudy.commands.common import EXIT_BAD_INPUT, Subcommands


def command_ols(args: argparse.Namespace) -> int:
    from normstudy.io import write_parquet_atomic
    from normstudy.ols import trajectories

    table = trajectories(args.d, args.kappa, args.lr, args.steps, args.seed)
    write_parquet_atomic(args.output, table)
    print(f"{table.num_rows} OLS iterates -> {args.output}")
    return 0


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


def add_ols_command(commands: Subcommands) -> None:
    ols = commands.add_parser("ols", help="OLS with and without BN (Morwani 2020 §2)")
    ols.add_argument("output", help="ols.parquet to write")
    ols.add_argument("--d", type=int, nargs="+", default=[2, 3], help="dimensions")
    ols.add_argument("--kappa", type=float, nargs="+", default=[10, 1000])
    ols.add_argument("--lr", type=float, nargs="+", default=[0.001, 0.1, 0.5, 1.0])
    ols.add_argument("--steps", type=int, default=200)
    ols.add_argument("--seed", type=int, default=0)
    ols.set_defaults(func=command_ols)


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
