"""Checkpoints: everything a run needs to resume bitwise-identically, written atomically."""

from __future__ import annotations

import copy
import errno
import os
import sys
from typing import TYPE_CHECKING

import torch

from normstudy.config import canonical_json
from normstudy.io import write_torch_atomic
from normstudy.train.state import Cell, RunState

if TYPE_CHECKING:
    from pathlib import Path

CHECKPOINT_FORMAT = 1


def checkpoint_payload(cell: Cell) -> dict:
    state = cell.state
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": canonical_json(cell.config),
        "model": cell.model.state_dict(),
        "optimizer": cell.optimizer.state_dict(),
        "scheduler": cell.scheduler.state_dict(),
        "rng_torch": torch.get_rng_state(),
        "rng": {name: g.get_state() for name, g in cell.generators.items()},
        "state": {k: v for k, v in vars(state).items() if k != "permutation"},
        "permutation": state.permutation,
    }
    if cell.device.type == "cuda":
        payload["rng_cuda"] = torch.cuda.get_rng_state_all()
    return payload


def save_checkpoint(cell: Cell, path: Path) -> None:
    """Write the checkpoint atomically (a temporary file beside it, then a rename).

    On a full disk the older checkpoint, which takes the room a second copy needs, is
    removed and the write tried once more; if that fails too, nothing of either is left,
    so the next run starts the cell over instead of resuming into the same full disk.
    """
    payload = checkpoint_payload(cell)
    try:
        write_torch_atomic(path, payload)
        return
    except OSError as error:
        if error.errno != errno.ENOSPC or not path.exists():
            raise OSError(
                error.errno, f"{error.strerror} writing checkpoint {path}; nothing of it is left"
            ) from error
    size = path.stat().st_size
    path.unlink()
    print(
        f"normstudy: warning: no space for a new checkpoint beside {path} ({size / 1e6:.1f} MB): "
        "removed the older one to make room",
        file=sys.stderr,
    )
    try:
        write_torch_atomic(path, payload)
    except OSError as error:
        raise OSError(
            error.errno,
            f"{error.strerror} writing checkpoint {path} ({size / 1e6:.1f} MB), even after "
            "removing the older one; no checkpoint is left, so the next run starts this cell "
            "over: free space on that disk",
        ) from error


def restore_checkpoint(cell: Cell, path: Path) -> str | None:
    """Load ``path`` into ``cell``; returns why it was ignored, or None if it was used.

    Whatever the file holds (unreadable, another format, config or model, a layout with
    keys this code does not know), it is either used whole or reported and ignored: every
    part is checked before anything is loaded, and a failed load puts the cell back as it was.
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location=cell.device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported and ignored
        return f"checkpoint {path} is unreadable ({type(error).__name__}: {error})"
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        return f"checkpoint {path} has an unknown format"
    if payload.get("config") != canonical_json(cell.config):
        return f"checkpoint {path} belongs to a different config"
    try:
        state = RunState(**payload["state"])
        state.permutation = payload["permutation"]
        rng_torch = payload["rng_torch"].cpu()
        rng = {name: payload["rng"][name].cpu() for name in cell.generators}
        rng_cuda = [s.cpu() for s in payload["rng_cuda"]] if "rng_cuda" in payload else None
    except (TypeError, KeyError, AttributeError) as error:
        problem = f"{type(error).__name__}: {error}"
        return f"checkpoint {path} has a layout this code does not know ({problem})"
    backup = copy.deepcopy(
        (cell.model.state_dict(), cell.optimizer.state_dict(), cell.scheduler.state_dict())
    )
    generator_states = {name: g.get_state() for name, g in cell.generators.items()}
    torch_state = torch.get_rng_state()
    try:
        cell.model.load_state_dict(payload["model"])
        cell.optimizer.load_state_dict(payload["optimizer"])
        cell.scheduler.load_state_dict(payload["scheduler"])
        for name, generator in cell.generators.items():
            generator.set_state(rng[name])
        torch.set_rng_state(rng_torch)
    except Exception as error:  # noqa: BLE001 - a mismatching checkpoint is reported, not fatal
        cell.model.load_state_dict(backup[0])
        cell.optimizer.load_state_dict(backup[1])
        cell.scheduler.load_state_dict(backup[2])
        for name, generator in cell.generators.items():
            generator.set_state(generator_states[name])
        torch.set_rng_state(torch_state)
        return f"checkpoint {path} does not match the model ({type(error).__name__}: {error})"
    if rng_cuda is not None and cell.device.type == "cuda":
        torch.cuda.set_rng_state_all(rng_cuda)
    state.resumed += 1
    cell.state = state
    return None


def set_aside_checkpoint(path: Path) -> Path | None:
    """Rename an unusable checkpoint to ``<name>.rejected`` (replacing an older one), so it
    neither blocks nor confuses a later run and can still be inspected."""
    target = path.with_name(path.name + ".rejected")
    try:
        os.replace(path, target)
    except OSError:
        path.unlink(missing_ok=True)
        return None
    return target
