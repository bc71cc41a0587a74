"""The ``normstudy`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

EXIT_BAD_INPUT = 2


def read_config_file(path: str) -> dict:
    """A cell config from a YAML or JSON file (JSON is YAML)."""
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except OSError as error:
        raise SystemExit(f"normstudy: cannot read config {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SystemExit(f"normstudy: config {path} is not valid YAML/JSON: {error}") from None
    return {} if data is None else data


def command_train(args: argparse.Namespace) -> int:
    from normstudy.config import ConfigError
    from normstudy.train import completed_summary, train_cell

    config = read_config_file(args.config)
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
        )
    except (ConfigError, FileNotFoundError) as error:
        print(f"normstudy: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    final = summary["final"]
    print(
        f"{summary['status']}: test acc {final['test_acc']:.4f}, train acc "
        f"{final['train_acc']:.4f}, {summary['epochs_run']} epochs, "
        f"{summary['train_seconds']:.1f}s -> {outdir}"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="normstudy", description=__doc__)
    top.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = top.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one cell: CONFIG (YAML/JSON) -> OUTDIR")
    train.add_argument("config", help="cell config file; keys not given take their defaults")
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
    train.set_defaults(func=command_train)
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
