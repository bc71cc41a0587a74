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


SHARED = (
    "import os, sys, time; from pathlib import Path; from normstudy.gpus import claim_gpu_slot; "
    "slot = claim_gpu_slot(int(sys.argv[3]), Path(sys.argv[1]) if sys.argv[1] else None, "
    "cells_per_gpu=int(sys.argv[4]));"
    " print(slot, os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep(float(sys.argv[2]))"
)


def start_shared(tmp_path, seconds, gpus, cells, env_extra=None):
    env = {k: v for k, v in __import__("os").environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-c", SHARED, str(tmp_path), str(seconds), str(gpus), str(cells)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_shared_gpus_spread_first_then_share_and_the_next_job_is_refused(tmp_path):
    """2 GPUs x 2 cells: jobs 1-2 get different GPUs, 3-4 share them, a 5th has no slot."""
    running = []
    for expected in (["0", "0"], ["1", "1"], ["2", "0"], ["3", "1"]):
        job = start_shared(tmp_path, 20, 2, 2)
        assert job.stdout.readline().split() == expected
        running.append(job)
    fifth = start_shared(tmp_path, 0, 2, 2)
    _, error = fifth.communicate()
    assert fifth.returncode != 0 and "all 4 GPU slots are in use (2 GPUs x 2 cells" in error
    running[2].kill()  # a crashed cell frees its slot: the OS drops its lock
    running[2].wait()
    replacement = start_shared(tmp_path, 0, 2, 2)
    assert replacement.communicate()[0].split() == ["2", "0"]
    for job in running:
        job.kill()
        job.wait()


def test_cells_of_one_slurm_job_share_its_gpus(tmp_path):
    """Under SLURM the visible devices are the job's: k cells share each, locks per job."""
    env = {"CUDA_VISIBLE_DEVICES": "5", "SLURM_JOB_ID": "123", "NORMSTUDY_GPU_LOCKS": str(tmp_path)}
    first = start_shared("", 20, 0, 2, env)
    assert first.stdout.readline().split() == ["0", "5"]
    second = start_shared("", 0, 0, 2, env)
    assert second.communicate()[0].split() == ["1", "5"]
    third = start_shared("", 0, 0, 2, {**env, "SLURM_JOB_ID": "124"})
    assert third.communicate()[0].split() == ["0", "5"]  # another job, its own slots
    first.kill()
    first.wait()
    assert (tmp_path / "normstudy-slurm-123").is_dir()


def test_slots_round_robin_and_memory_shares():
    from normstudy.gpus import memory_fraction, slot_devices

    assert slot_devices(["0", "1", "2"], 2) == ["0", "1", "2", "0", "1", "2"]
    assert slot_devices(["7"], 3) == ["7", "7", "7"]
    with pytest.raises(ValueError, match="cells_per_gpu must be an integer >= 1"):
        slot_devices(["0"], 0)
    assert memory_fraction(1) is None and memory_fraction(4) == 0.25


def test_sharing_cells_cap_their_memory_at_their_share(monkeypatch):
    """With CUDA (stubbed here: no GPU on this machine), k sharers each take 1/k."""
    import torch

    from normstudy.gpus import limit_gpu_memory

    fractions = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", fractions.append)
    assert limit_gpu_memory(4) == 0.25 and fractions == [0.25]
    assert limit_gpu_memory(1) is None and fractions == [0.25]


def test_memory_is_not_limited_without_cuda():
    from normstudy.gpus import limit_gpu_memory

    assert limit_gpu_memory(1) is None
    assert limit_gpu_memory(2) is None  # no CUDA on this machine: nothing to limit
