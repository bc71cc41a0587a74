"""``normstudy slurm-profile``: write the user's own Snakemake profile named ``slurm``.

``snakemake --profile slurm`` looks for a directory ``slurm`` in the working directory and
in the user's and the site's Snakemake config directories (``~/.config/snakemake/slurm``).
That profile holds what belongs to the user and the cluster, not to this workflow: the
executor, the account, the partition, the job limit (and, where ``sacct`` does not work,
``squeue`` for job status). Everything the workflow needs per job (GPUs, CPUs, memory,
time limits, the partition of CPU-only jobs) comes from ``config.yaml``
(:mod:`normstudy.cluster`). The values are filled in from what ``sacctmgr`` and ``sinfo``
report, where they can be asked.
"""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normstudy.cluster import (
    Partition,
    query_partitions,
    run_tool,
    sacct_works,
    sharing_choices,
)

Runner = Callable[..., Any]


class ProfileError(RuntimeError):
    """The profile cannot be written as asked; the message says what to pass."""


def default_account(run: Runner = subprocess.run) -> str | None:
    """The user's default SLURM account (``sacctmgr``), or None where it cannot be asked."""
    user = getpass.getuser()
    result = run_tool(run, "sacctmgr", "-nP", "show", "user", user, "format=defaultaccount")
    if result is not None and result.returncode == 0:
        accounts = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        if accounts:
            return accounts[0]
    return None


def default_config_dir() -> Path:
    """Where Snakemake looks for the user's profiles (``$XDG_CONFIG_HOME/snakemake``)."""
    from snakemake.common import get_appdirs

    return Path(get_appdirs().user_config_dir)


@dataclass(frozen=True)
class ProfileChoice:
    account: str | None
    partition: str
    partition_info: Partition | None
    jobs: int
    squeue_status: bool
    notes: tuple[str, ...]


def choose(
    account: str | None,
    partition: str | None,
    jobs: int,
    partitions: dict[str, Partition] | None,
    run: Runner = subprocess.run,
) -> ProfileChoice:
    """The profile's values: those given, else what the cluster reports."""
    notes = []
    if partitions is None:
        raise ProfileError("sinfo is not available or failed: run this on the cluster's login node")
    if partition is None:
        gpu = sorted(
            (p for p in partitions.values() if p.gpus and p.up),
            key=lambda p: (not p.default, -(p.max_minutes or float("inf")), p.name),
        )
        if not gpu:
            raise ProfileError(
                "no partition of this cluster has GPUs (sinfo %G); pass --partition, and "
                "set slurm.gpus: 0 in config.yaml to train on CPUs; partitions: "
                + ", ".join(sorted(partitions))
            )
        partition = gpu[0].name
        notes.append(
            f"partition {partition}: has GPUs"
            + (f" (other GPU partitions: {', '.join(p.name for p in gpu[1:])})" if gpu[1:] else "")
        )
    elif partition not in partitions:
        raise ProfileError(
            f"--partition {partition!r} does not exist; partitions: "
            + ", ".join(sorted(partitions))
        )
    info = partitions[partition]
    limit = "no limit" if info.max_minutes is None else f"{info.max_minutes:g} minutes"
    notes.append(f"MaxTime of {partition}: {limit} (jobs never ask for more)")
    if info.gpus:
        shards = info.shards_per_gpu
        notes.append(
            f"GPU sharing on {partition}: {shards} shards per GPU (gres/shard); "
            "resources.cells_per_gpu in config.yaml may be "
            + ", ".join(map(str, sharing_choices(shards)))
            if shards
            else f"GPU sharing on {partition}: no shards (gres/shard), so cells do not share "
            "GPUs there (resources.cells_per_gpu: 1)"
        )
    if account is None:
        account = default_account(run)
        notes.append(
            f"account {account}: your default account (sacctmgr)"
            if account
            else "no account: sacctmgr reports none (pass --account if your cluster needs one)"
        )
    squeue = not sacct_works(run)
    if squeue:
        notes.append(
            "sacct does not work here (no accounting daemon): job status is read with squeue"
        )
    return ProfileChoice(account, partition, info, jobs, squeue, tuple(notes))


def profile_text(choice: ProfileChoice) -> str:
    lines = [
        "# Your Snakemake profile for this SLURM cluster, written by `normstudy slurm-profile`.",
        "# It holds only what belongs to you and the cluster; each workflow says what its",
        "# jobs need. Use: snakemake --profile slurm",
        "executor: slurm",
        f"jobs: {choice.jobs}                  # SLURM jobs in the queue at once",
        "latency-wait: 60            # shared file systems show new files late",
        "default-resources:",
        f'  slurm_partition: "{choice.partition}"',
    ]
    if choice.account:
        lines.append(f'  slurm_account: "{choice.account}"')
    else:
        lines.append("slurm-no-account: true")
    if choice.squeue_status:
        lines += [
            "# sacct does not work on this cluster: squeue reports job status (reliable while",
            "# MinJobAge, `scontrol show config | grep MinJobAge`, is at least 3 x the delay",
            "# before the first status check, 40 s by default).",
            "slurm-status-command: squeue",
        ]
    return "\n".join(lines) + "\n"


def write_profile(directory: Path, text: str, force: bool) -> Path:
    """Write ``directory/config.yaml`` (atomically, following the umask)."""
    path = directory / "config.yaml"
    if path.exists() and not force:
        raise ProfileError(f"{path} exists; pass --force to replace it")
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def main(args) -> int:
    directory = Path(args.dir) if args.dir else default_config_dir() / "slurm"
    choice = choose(args.account, args.partition, args.jobs, query_partitions())
    path = write_profile(directory, profile_text(choice), args.force)
    print(f"wrote {path}")
    for note in choice.notes:
        print(f"  {note}")
    print("next: snakemake --profile slurm -n   (what would be submitted), then without -n")
    return 0
