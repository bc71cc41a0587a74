"""The manifest beside each data cache, and the planning-time check of the cache. No torch.

``prepare_data`` writes ``results/data/<key>.pt`` (the tensors) and ``<key>.json``, its
manifest: the cache's size, modification time and SHA-256, and the digest of the data it
holds. Training jobs depend on the manifest (as an ``ancient`` input), never on the
cache's timestamp, and every cell records the digest of the data it trained on.

While Snakemake plans, :func:`damaged_caches` compares each cache with its manifest (a
``stat``; the file is hashed only when size or time differ): a cache that was overwritten,
truncated or replaced is set aside (``<key>.pt.damaged``) and rebuilt by ``prepare_data``,
without re-running a finished cell.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_KEYS = ("key", "digest", "sha256", "size", "mtime_ns")


def manifest_path(cache: str | os.PathLike[str]) -> Path:
    return Path(cache).with_suffix(".json")


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(cache: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of ``cache``, or None if it is missing or unreadable."""
    try:
        manifest = json.loads(manifest_path(cache).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or any(key not in manifest for key in MANIFEST_KEYS):
        return None
    return manifest


def cache_problem(cache: str | os.PathLike[str]) -> str | None:
    """Why the existing file ``cache`` is not the one ``prepare_data`` wrote, or None."""
    cache = Path(cache)
    manifest = read_manifest(cache)
    if manifest is None:
        return f"it has no readable manifest ({manifest_path(cache).name})"
    stat = cache.stat()
    if stat.st_size == manifest["size"] and stat.st_mtime_ns == manifest["mtime_ns"]:
        return None
    if stat.st_size != manifest["size"]:
        return (
            f"it has changed since prepare_data wrote it ({stat.st_size} bytes, not "
            f"{manifest['size']})"
        )
    if file_sha256(cache) != manifest["sha256"]:
        return "its content has changed since prepare_data wrote it (SHA-256 differs)"
    return None


def damaged_caches(paths: list[str | os.PathLike[str]]) -> dict[Path, str]:
    """The existing caches among ``paths`` that differ from their manifest, with the reason."""
    problems = {}
    for path in map(Path, paths):
        if path.exists():
            problem = cache_problem(path)
            if problem:
                problems[path] = problem
    return problems


def set_aside(path: Path) -> Path:
    """Rename a damaged file (a cache, a table) to ``<name>.damaged``, replacing an older
    one; returns the new name."""
    target = path.with_name(path.name + ".damaged")
    os.replace(path, target)
    return target
