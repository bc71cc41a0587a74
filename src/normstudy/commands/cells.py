"""Commands that make one cell: ``train``, ``prepare-data`` and ``check-build``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from normstudy.commands.common import (
    EXIT_BAD_INPUT,
    EXIT_IO_ERROR,
    Subcommands,
    add_config_arguments,
    config_from_args,
)


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
