"""A copy of a finished cell's outputs outside the job's declared outputs.

Snakemake deletes the declared outputs of every job of a failed group job, and a
retried group runs all its jobs again. With the SLURM profile's bundling (many cells per
SLURM job) one crashing or preempted cell would thus throw away the finished results of
its bundle mates and train them again on every retry. ``normstudy train
--finished-copy DIR`` therefore copies the finished outputs to ``DIR`` (beside the
checkpoints) and, when the same config was finished by the same code before, restores
them from there instead of training again.

The copy is used only if it was made from the same resolved config by the same code
(a hash of the ``normstudy`` sources and the torch version): after an edit of the code,
a forced re-run trains again. A damaged copy is reported and ignored.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from normstudy.config import canonical_json
from normstudy.io import atomic_path, follow_umask, read_json

OUTPUT_FILES = ("config.json", "curves.parquet", "probes.parquet", "summary.json")
"""In copy order: ``summary.json`` last, as in a cell directory (complete iff present)."""
STAMP = "finished.json"


@cache
def code_fingerprint() -> str:
    """A hash of the ``normstudy`` package sources and the torch version."""
    digest = hashlib.sha256(importlib.metadata.version("torch").encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stamp_for(config: dict[str, Any]) -> dict[str, str]:
    return {"config": canonical_json(config), "code": code_fingerprint()}


def save_finished_copy(outdir: Path, copy_dir: Path, config: dict[str, Any]) -> None:
    """Copy the finished outputs of ``outdir`` to ``copy_dir`` (replaced as a whole)."""
    copy_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{copy_dir.name}.", dir=copy_dir.parent))
    try:
        follow_umask(staging, directory=True)
        for name in OUTPUT_FILES:
            shutil.copyfile(outdir / name, staging / name)
        (staging / STAMP).write_text(json.dumps(stamp_for(config)))
        if copy_dir.exists():
            shutil.rmtree(copy_dir)
        staging.rename(copy_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def usable_copy(copy_dir: Path, config: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether ``copy_dir`` holds the outputs of ``config`` by this code; else why not.

    Returns ``(False, None)`` when there is no copy or it is of another config or code
    (nothing to report), ``(False, reason)`` when it is damaged.
    """
    if not (copy_dir / STAMP).exists():
        return False, None
    try:
        if read_json(copy_dir / STAMP) != stamp_for(config):
            return False, None
        summary = read_json(copy_dir / "summary.json")
        if not isinstance(summary, dict) or "status" not in summary:
            return False, f"finished copy {copy_dir} has an incomplete summary.json"
        read_json(copy_dir / "config.json")
        for name in ("curves.parquet", "probes.parquet"):
            pq.read_table(copy_dir / name)
    except (OSError, ValueError, pa.ArrowException) as error:
        return False, f"finished copy {copy_dir} is damaged ({type(error).__name__}: {error})"
    return True, None


def restore_finished_copy(copy_dir: Path, outdir: Path) -> dict[str, Any]:
    """Copy the outputs back into ``outdir`` (each file atomically, the summary last)."""
    outdir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:
        with atomic_path(outdir / name) as tmp:
            shutil.copyfile(copy_dir / name, tmp)
    return read_json(outdir / "summary.json")
