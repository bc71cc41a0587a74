"""The ``normstudy`` command line: one parser, a subcommand per :mod:`normstudy.commands`
function pair (its arguments and what it runs)."""

from __future__ import annotations

import argparse
import logging
import sys

from normstudy.commands.cells import (
    add_check_build_command,
    add_prepare_data_command,
    add_train_command,
)
from normstudy.commands.common import EXIT_BAD_INPUT, EXIT_IO_ERROR  # noqa: F401  (public)
from normstudy.commands.estimate import add_estimate_command
from normstudy.commands.results import add_clean_command, add_status_command
from normstudy.commands.tables import (
    add_aggregate_command,
    add_check_cells_command,
    add_compare_command,
    add_power_command,
)
from normstudy.commands.tools import add_figure_command, add_ols_command, add_slurm_profile_command

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
