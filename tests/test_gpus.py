"""GPU slot claiming: concurrent jobs get different devices; SLURM's choice is kept."""

import subprocess
import sys

import pytest

from normstudy.gpus import claim_gpu_slot

CLAIM = (
    "import os, sys, time; from pathlib import Path; from normstudy.gpus import claim_gpu_slot; "
    "slot = claim_gpu_slot(2, Path(sys.argv[1])); print(slot, os.environ['CUDA_VISIBLE_DEVICES'],"
    " flush=True); time.sleep(float(sys.argv[2]))"
)


def start(tmp_path, seconds):
    env = {k: v for k, v in __import__("os").environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(tmp_path), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_concurrent_jobs_get_different_gpus_and_a_third_is_refused(tmp_path):
    first = start(tmp_path, 5)
    assert first.stdout.readline().split() == ["0", "0"]
    second = start(tmp_path, 5)
    assert second.stdout.readline().split() == ["1", "1"]
    third = start(tmp_path, 0)
    _, error = third.communicate()
    assert third.returncode != 0 and "all 2 GPU slots are in use" in error
    first.kill()
    first.wait()
    fourth = start(tmp_path, 0)
    assert fourth.communicate()[0].split() == ["0", "0"]
    second.kill()
    second.wait()


def test_a_device_chosen_by_slurm_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert claim_gpu_slot(2, tmp_path) is None
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("slots", [0, -1])
def test_no_slots_means_no_gpu_handling(tmp_path, slots, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert claim_gpu_slot(slots, tmp_path) is None
