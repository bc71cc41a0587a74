"""What every command shares: exit statuses, reading a config, refusing bad input."""

from __future__ import annotations

import argparse
import json
import sys
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


def add_config_arguments(command: argparse.ArgumentParser) -> None:
    group = command.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "config", nargs="?", help="cell config file (YAML/JSON); missing keys take defaults"
    )
    group.add_argument("--json", help="the cell config as a JSON string instead of a file")


Subcommands = Any
"""What ``ArgumentParser.add_subparsers`` returns (argparse gives it no public type)."""
