"""Provenance of a run: git state, host, device, SLURM job (no torch needed)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from normstudy import provenance
from normstudy.tables import PROVENANCE_COLUMNS

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(directory: Path, *args: str) -> str:
    command = ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A git repository whose ``pkg/__init__.py`` is committed; returns the package dir."""
    package = tmp_path / "repo" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    git(package.parent, "init", "-q")
    git(package.parent, "add", ".")
    git(package.parent, "commit", "-q", "-m", "first")
    provenance.git_state.cache_clear()
    yield package
    provenance.git_state.cache_clear()


@needs_git
def test_a_clean_checkout_gives_its_commit(checkout):
    assert provenance.git_state(checkout) == (git(checkout, "rev-parse", "HEAD"), False)


@needs_git
@pytest.mark.parametrize(
    "change",
    [
        lambda package: (package / "__init__.py").write_text("x = 1\n"),
        lambda package: (package / "new.py").write_text(""),
        lambda package: (package.parent / "README").write_text("outside the package"),
    ],
    ids=["modified", "untracked", "elsewhere-in-the-tree"],
)
def test_any_change_in_the_tree_is_dirty(checkout, change):
    change(checkout)
    assert provenance.git_state(checkout) == (git(checkout, "rev-parse", "HEAD"), True)


@needs_git
def test_git_state_is_cached_per_process(checkout):
    commit, dirty = provenance.git_state(checkout)
    (checkout / "new.py").write_text("")
    assert provenance.git_state(checkout) == (commit, dirty) == (commit, False)


@needs_git
def test_outside_a_checkout_or_untracked_it_is_unknown(tmp_path, checkout):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "__init__.py").write_text("")
    assert provenance.git_state(plain) == (None, None)
    # A package installed into an ignored venv inside a repository is not its code.
    (checkout.parent / ".gitignore").write_text("venv/\n")
    installed = checkout.parent / "venv" / "site-packages" / "pkg"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    assert provenance.git_state(installed) == (None, None)


def test_without_git_it_is_unknown_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    provenance.git_state.cache_clear()
    assert provenance.git_state(provenance.PACKAGE_DIR) == (None, None)
    provenance.git_state.cache_clear()


def test_gather_records_host_device_and_the_slurm_job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4700")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "11")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    record = provenance.gather("cpu")
    assert list(record) == list(provenance.FIELDS)
    assert record["host"] == socket.gethostname()
    assert record["device"] == "cpu"
    assert record["gpu_name"] is record["cuda_version"] is record["cudnn_version"] is None
    assert record["slurm_job_id"] == "4711" and record["slurm_array_job_id"] == "4700"
    assert record["slurm_array_task_id"] == 11
    assert record["cuda_visible_devices"] == "2"
    assert (record["git_commit"], record["git_dirty"]) == provenance.git_state()


def test_outside_slurm_the_job_fields_are_null(monkeypatch):
    for name in (*provenance.SLURM_VARIABLES.values(), "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    record = provenance.gather("cpu")
    assert record["slurm_job_id"] is record["slurm_array_task_id"] is None
    assert record["cuda_visible_devices"] is None


def test_every_field_but_the_device_has_a_cells_column():
    # `device` is already a column of cells.parquet (summary.json's `device`).
    assert [f for f in provenance.FIELDS if f != "device"] == list(PROVENANCE_COLUMNS)
