"""SLURM planning without a cluster: time limits, chains, preflight, the invocation that
decides it, and the profile writer (``normstudy.cluster``, ``invocation``,
``slurm_profile``). The same paths run against a real scheduler in ``tests/slurm``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from normstudy.cluster import (
    SLURM_DEFAULTS,
    ClusterConfigError,
    Partition,
    TrainRequest,
    bundle_outline,
    bundle_problem,
    bundled_minutes,
    cell_minutes,
    cells_to_bundle,
    chain_retries,
    cpu_job_cap,
    cpu_partition,
    effective_cap,
    gpu_sharing_request,
    gres_counts,
    measured_minutes,
    parse_sinfo,
    parse_time_limit,
    preflight,
    resolve_partition,
    train_request,
)
from normstudy.config import resolve_cell_config
from normstudy.invocation import ENV, command_line_invocation, current_invocation
from normstudy.slurm_profile import ProfileError, choose, profile_text, write_profile

SETTINGS = {**SLURM_DEFAULTS, "startup_minutes": 5, "warn_seconds": 300, "safety": 1.5}
SINFO = "cpu*|1-00:00:00||up\ngpu|2-00:00:00|gpu:a100:4|up\ngpu|2-00:00:00|(null)|up\n"


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("1-00:00:00", 1440),
        ("2-12", 3600),
        ("02:30:00", 150),
        ("2:00", 2),
        ("45", 45),
        ("infinite", None),
        ("UNLIMITED", None),
    ],
)
def test_slurm_time_limits_in_minutes(text, minutes):
    assert parse_time_limit(text) == minutes


def test_a_malformed_time_limit_is_refused():
    with pytest.raises(ValueError, match="not a SLURM time limit"):
        parse_time_limit("soon")


def test_sinfo_partitions_with_gpus_on_any_node_and_the_default():
    partitions = parse_sinfo(SINFO)
    assert partitions["cpu"] == Partition("cpu", 1440, False, True, True)
    assert partitions["gpu"].gpus and partitions["gpu"].max_minutes == 2880
    assert not partitions["gpu"].default


def test_no_job_asks_for_more_than_the_cap_and_a_long_cell_becomes_a_chain():
    # 100 minutes of training x 1.5 safety = 150; 60-minute cap leaves 60 - 5 - 5 = 50.
    request = train_request(100, SETTINGS, cap=60)
    assert request.runtime == 60 and request.segments == 3
    # Short cells ask for what they need; a retry asks for more, never above the cap.
    short = train_request(10, SETTINGS, cap=60)
    # (5 start-up + 5 warning + 15 training: the warning never comes before the work is done)
    assert short.runtime == 25 and short.segments == 1
    assert train_request(10, SETTINGS, cap=60, attempt=2).runtime == 40
    assert train_request(10, SETTINGS, cap=60, attempt=9).runtime == 60
    assert train_request(1000, SETTINGS, cap=None).runtime == 1510


def test_the_chain_retries_cover_the_longest_cell_plus_the_fault_retries():
    requests = {"a": train_request(100, SETTINGS, 60), "b": train_request(1, SETTINGS, 60)}
    assert chain_retries(requests, SETTINGS) == 2 + SETTINGS["retries"]


def test_a_cap_that_leaves_no_training_time_is_refused():
    with pytest.raises(ClusterConfigError, match="leaves no time to train"):
        train_request(10, SETTINGS, cap=8)


def test_the_cap_is_the_setting_else_the_partition_limit():
    gpu = parse_sinfo(SINFO)["gpu"]
    assert effective_cap(SETTINGS, gpu) == 2880
    assert effective_cap({**SETTINGS, "max_runtime": 90}, gpu) == 90
    assert effective_cap(SETTINGS, None) is None


def test_cpu_jobs_are_capped_by_their_own_partition_not_the_training_one():
    cpu = Partition("cpu", 60, False, True, True)
    assert cpu_job_cap(SETTINGS, cpu) == 60
    assert cpu_job_cap({**SETTINGS, "max_runtime": 20}, cpu) == 20
    assert cpu_job_cap({**SETTINGS, "max_runtime": 90}, cpu) == 60
    assert cpu_job_cap(SETTINGS, Partition("cpu", None, False, True, True)) is None
    assert cpu_job_cap(SETTINGS, None) is None


def test_gpu_time_comes_from_a_cuda_measurement_never_a_cpu_one(tmp_path):
    csv = tmp_path / "cells.csv"
    csv.write_text("cell_id,hours,device\na,0.5,cuda:0\nb,2.0,cpu\n")
    assert measured_minutes(csv) == {"a": 30.0}
    assert measured_minutes(tmp_path / "missing.csv") == {}
    config = resolve_cell_config({"model": "mlp", "depth": 1, "width": 8, "epochs": 2})
    assert cell_minutes("a", config, SETTINGS, {"a": 30.0}) == 30.0
    # A cell sharing its GPU with another may get half of it: twice its time alone.
    assert cell_minutes("a", config, SETTINGS, {"a": 30.0}, sharing=2) == 60.0
    alone = cell_minutes("b", config, SETTINGS, {})
    assert alone > 0 and cell_minutes("b", config, SETTINGS, {}, sharing=3) == 3 * alone
    # Otherwise the documented GPU default, from parameters x examples.
    default = cell_minutes("b", config, SETTINGS, {"a": 30.0})
    doubled = cell_minutes("b", {**config, "epochs": 4}, SETTINGS, {})
    assert 0 < default and doubled == pytest.approx(2 * default)


def test_the_preflight_names_the_study_the_cell_and_the_fix():
    partitions = parse_sinfo(SINFO)
    requests = {"cell-1": train_request(10, SETTINGS, 60)}
    study_of = {"cell-1": "zoo"}
    no_gpu = preflight(requests, study_of, {**SETTINGS, "gpus": 0}, partitions["gpu"], partitions)
    assert len(no_gpu) == 1 and "without a GPU" in no_gpu[0]
    assert "study zoo" in no_gpu[0] and "cell-1" in no_gpu[0] and "slurm.gpus: 1" in no_gpu[0]
    on_cpu = preflight(requests, study_of, SETTINGS, partitions["cpu"], partitions)
    assert "has none" in on_cpu[0] and "slurm.gpu_partition to one of: gpu" in on_cpu[0]
    too_long = {**SETTINGS, "max_runtime": 5000}
    (message,) = preflight(requests, study_of, too_long, partitions["gpu"], partitions)
    assert "exceeds partition 'gpu'" in message and "at most 2880" in message
    assert preflight(requests, study_of, SETTINGS, partitions["gpu"], partitions) == []
    # Without sinfo nothing can be checked, and nothing is refused.
    assert preflight(requests, study_of, {**SETTINGS, "gpus": 0}, None, None) == []


def test_a_cluster_without_gpus_is_said_so():
    partitions = parse_sinfo("cpu*|1:00:00||up\n")
    (message,) = preflight(
        {"c": train_request(1, SETTINGS, 60)}, {"c": "s"}, SETTINGS, partitions["cpu"], partitions
    )
    assert "reports no GPUs" in message and "slurm.gpus: 0" in message


def test_a_partition_has_gpus_only_by_a_gpu_gres_with_a_count():
    """GRES names that merely contain "gpu" (a site's ``gpumem``) or other devices (MPS)
    do not make a GPU partition; typed GPUs with socket lists do."""
    partitions = parse_sinfo(
        "mem|1:00|gpumem:40|up\nmps|1:00|mps:100|up\ntyped|1:00|gpu:a100:4(S:0-1)|up\n"
        "mixed|1:00|(null)|up\nmixed|1:00|gpu:2|up\n"
    )
    assert {name: p.gpus for name, p in partitions.items()} == {
        "mem": False,
        "mps": False,
        "typed": True,
        "mixed": True,
    }


def test_partitions_by_name_and_for_the_cpu_jobs():
    partitions = parse_sinfo(SINFO)
    assert resolve_partition(None, partitions, "training jobs", "k").name == "cpu"
    with pytest.raises(ClusterConfigError, match="'a100'.*partitions: cpu, gpu"):
        resolve_partition("a100", partitions, "training jobs", "slurm.gpu_partition")
    assert resolve_partition("x", None, "training jobs", "k") is None
    assert cpu_partition(SETTINGS, partitions, "gpu") == "cpu"
    only_gpus = parse_sinfo("gpu*|1:00:00|gpu:1|up\n")
    assert cpu_partition(SETTINGS, only_gpus, "gpu") == "gpu"
    assert cpu_partition({**SETTINGS, "cpu_partition": "cpu"}, partitions, None) == "cpu"
    with pytest.raises(ClusterConfigError, match="slurm.cpu_partition"):
        cpu_partition({**SETTINGS, "cpu_partition": "nope"}, partitions, None)


def user_profile(home: Path, text: str) -> None:
    directory = home / "snakemake" / "slurm"
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(text)


def test_the_executor_is_read_from_the_users_profile_also_in_a_dry_run(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    user_profile(
        tmp_path, 'executor: slurm\njobs: 10\ndefault-resources:\n  slurm_partition: "gpu"\n'
    )
    invocation = command_line_invocation(["-n", "--profile", "slurm"])
    assert invocation.slurm and invocation.default_resources["slurm_partition"] == "gpu"
    assert not command_line_invocation(["-n"]).slurm
    assert invocation.grouped_rules == frozenset()
    grouped = command_line_invocation(["--groups", "train=cells", "--group-components", "cells=5"])
    assert grouped.grouped_rules == {"train"}
    assert grouped.bundle_size("train") == 5 and grouped.bundle_size("tables") == 1
    # A group without --group-components bundles only connected jobs: one cell each.
    assert command_line_invocation(["--groups", "train=cells"]).bundle_size("train") == 1
    assert invocation.bundle_size("train") == 1
    # Components of a group nobody is in: Snakemake ignores them, normstudy says so.
    mismatched = command_line_invocation(["--groups", "train=g", "--group-components", "train=5"])
    assert mismatched.bundle_size("train") == 1
    assert mismatched.unknown_component_groups() == ["train"]
    assert grouped.unknown_component_groups() == []
    # The studies study_<name> targets ask for; any other target may need every study.
    targeted = command_line_invocation(["study_a", "study_b", "--groups", "train=g"])
    assert targeted.target_studies() == ["a", "b"]
    assert command_line_invocation(["study_a", "tables"]).target_studies() is None
    assert grouped.target_studies() is None


def requests_of(**runtimes: int) -> dict[str, TrainRequest]:
    return {cell: TrainRequest(minutes, 1, minutes) for cell, minutes in runtimes.items()}


def test_a_bundle_must_fit_its_cells_run_one_after_another_in_the_time_cap():
    """A bundle asks for the sum of its cells' times, and may hold any of the plan's
    cells: the longest request times the bundle size must fit the cap."""
    requests = requests_of(a=10, b=25, c=5)
    study_of = {"a": "s", "b": "t", "c": "s"}
    assert bundle_problem(requests, study_of, 60, 2, "cells", SETTINGS) is None
    problem = bundle_problem(requests, study_of, 60, 3, "cells", SETTINGS)
    assert "--group-components cells=3" in problem and "3 x 25 min" in problem
    assert "study t, cell b" in problem and "--group-components cells=2" in problem
    # Cells that fill a job each (chained cells ask for the whole cap) cannot be bundled.
    chained = bundle_problem(requests_of(a=60, b=5), {"a": "s"}, 60, 2, "g", SETTINGS)
    assert "drop train from --groups" in chained
    # No cap known (sinfo unanswered, no slurm.max_runtime), or bundles of one: nothing.
    assert bundle_problem(requests, study_of, None, 30, "cells", SETTINGS) is None
    assert bundle_problem(requests, study_of, 60, 1, "cells", SETTINGS) is None
    # A bundle holds at most the plan's cells: 3 cells in bundles of 5 ask for 3 x 25.
    assert bundle_problem(requests, study_of, 75, 5, "cells", SETTINGS) is None
    assert "(the training partition's MaxTime)" in problem
    capped = bundle_problem(requests, study_of, 60, 3, "cells", {**SETTINGS, "max_runtime": 60})
    assert "(slurm.max_runtime)" in capped


def test_a_bundle_holds_only_unfinished_cells_of_the_targets():
    requests = requests_of(a=10, b=25, c=5)
    done = {"b"}.__contains__
    assert list(cells_to_bundle(requests, None, done)) == ["a", "c"]
    assert list(cells_to_bundle(requests, {"a", "b"}, done)) == ["a"]
    assert cells_to_bundle(requests, set(), done) == {}


def test_the_outline_of_bundles_sums_the_longest_cells_a_bundle_can_hold():
    outline = bundle_outline(requests_of(a=10, b=25, c=5, d=7), 3, "cells")
    assert outline.startswith("bundles (--group-components cells=3): 4 training cells to run")
    assert "in at least 2 SLURM jobs of up to 3;" in outline and "at most 42 min" in outline
    # The user's size, and what a bundle can hold of the cells left.
    one = bundle_outline(requests_of(a=7), 4, "g")
    assert "g=4): 1 training cell to run, in at least 1 SLURM job of up to 1;" in one
    assert "at most 7 min" in one
    assert bundle_outline({}, 3, "g").endswith("g=3): no training cell left to run")


def test_a_bundled_cell_never_asks_for_more_than_its_share_of_the_cap():
    """Retries ask for more time; within a bundle a cell stops at cap / size, so that the
    bundle's sum never exceeds the cap."""
    assert bundled_minutes(50, 60, 2) == 30
    assert bundled_minutes(20, 60, 2) == 20
    assert bundled_minutes(50, 61, 4) == 15
    assert bundled_minutes(50, None, 4) == 50
    assert bundled_minutes(50, 60, 1) == 50


def test_jobs_plan_as_the_process_that_submitted_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    user_profile(tmp_path, "executor: slurm\n")
    environ: dict[str, str] = {}
    main = current_invocation(["/venv/bin/snakemake", "--profile", "slurm"], True, environ)
    assert main.slurm and environ[ENV] == "slurm"
    assert current_invocation(["python", "-m", "snakemake"], False, environ).slurm
    assert not current_invocation(["x"], False, {}).slurm
    # Snakemake driven through its API, not its command line: local.
    assert not current_invocation(["pytest"], True, {}).slurm
    # --groups reaches the jobs too: a bundle's batch step must know its cells are bundled.
    command = ["/venv/bin/snakemake", "--profile", "slurm", "--groups", "train=cells"]
    assert current_invocation(command, True, environ).grouped_rules == {"train"}
    assert current_invocation(["python", "-m", "snakemake"], False, environ).grouped_rules == {
        "train"
    }
    assert current_invocation(["x"], False, {}).grouped_rules == frozenset()


class FakeRun:
    """``subprocess.run`` for sacctmgr and sacct."""

    def __init__(self, account: str | None, sacct_ok: bool) -> None:
        self.account, self.sacct_ok = account, sacct_ok

    def __call__(self, command, **kwargs):
        if command[0] == "sacctmgr":
            out = f"{self.account}\n" if self.account else ""
            return subprocess.CompletedProcess(command, 0 if self.account else 1, out, "")
        return subprocess.CompletedProcess(command, 0 if self.sacct_ok else 1, "", "")


def test_the_profile_gets_a_gpu_partition_the_account_and_the_status_command(monkeypatch):
    monkeypatch.setattr("normstudy.cluster.shutil.which", lambda name: f"/usr/bin/{name}")
    partitions = parse_sinfo(SINFO)
    choice = choose(None, None, 50, partitions, run=FakeRun("lab42", sacct_ok=True))
    assert (choice.partition, choice.account, choice.squeue_status) == ("gpu", "lab42", False)
    text = profile_text(choice)
    assert 'slurm_partition: "gpu"' in text and 'slurm_account: "lab42"' in text
    assert "jobs: 50" in text and "squeue" not in text
    assert any("gpu: no shards" in note for note in choice.notes), choice.notes
    sharded = parse_sinfo("gpu*|1:00|gpu:2,shard:8|up\n")
    notes = choose(None, None, 10, sharded, run=FakeRun(None, True)).notes
    assert any("4 shards per GPU" in n and "may be 1, 2, 4" in n for n in notes), notes
    bare = choose(None, "cpu", 10, partitions, run=FakeRun(None, sacct_ok=False))
    text = profile_text(bare)
    assert "slurm-no-account: true" in text and "slurm-status-command: squeue" in text
    with pytest.raises(ProfileError, match="'a100' does not exist; partitions: cpu, gpu"):
        choose(None, "a100", 10, partitions, run=FakeRun(None, True))
    with pytest.raises(ProfileError, match="no partition of this cluster has GPUs"):
        choose(None, None, 10, parse_sinfo("cpu*|1:00||up\n"), run=FakeRun(None, True))
    with pytest.raises(ProfileError, match="login node"):
        choose(None, None, 10, None, run=FakeRun(None, True))


def test_an_existing_profile_is_kept_unless_forced(tmp_path):
    path = write_profile(tmp_path / "slurm", "executor: slurm\n", force=False)
    with pytest.raises(ProfileError, match="--force"):
        write_profile(tmp_path / "slurm", "other\n", force=False)
    write_profile(tmp_path / "slurm", "other\n", force=True)
    assert path.read_text() == "other\n"


def test_the_profiles_extra_sbatch_options_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    user_profile(tmp_path, 'executor: slurm\ndefault-resources:\n  slurm_extra: "--qos=high"\n')
    resources = command_line_invocation(["--profile", "slurm"]).default_resources
    assert resources["slurm_extra"] == "--qos=high"


def test_a_profile_that_would_wait_forever_for_sacct_is_refused():
    from normstudy.cluster import status_problem

    assert "slurm-status-command: squeue" in status_problem(None, sacct_ok=False)
    assert status_problem("sacct", sacct_ok=False) is not None
    assert status_problem("squeue", sacct_ok=False) is None
    assert status_problem(None, sacct_ok=True) is None


def test_gres_counts_read_what_sinfo_prints():
    assert gres_counts("gpu:a100:4,shard:32(S:0-1)") == {"gpu": 4, "shard": 32}
    assert gres_counts("gpu:2(S:0,1),shard:4") == {"gpu": 2, "shard": 4}
    assert gres_counts("gpu:a100:2,gpu:v100:2") == {"gpu": 4}
    assert gres_counts("(null)") == {}


def test_a_partition_has_as_many_shards_per_gpu_as_its_poorest_gpu_node():
    text = "gpu|1:00:00|gpu:4,shard:16|up\ngpu|1:00:00|gpu:2,shard:4|up\n"
    text += "mixed|1:00:00|gpu:2,shard:8|up\nmixed|1:00:00|gpu:2|up\nmixed|1:00:00|(null)|up\n"
    partitions = parse_sinfo(text)
    assert partitions["gpu"].shards_per_gpu == 2  # 16/4 = 4 on one node, 4/2 = 2 on the other
    assert partitions["mixed"].shards_per_gpu == 0  # one GPU node has no shards
    assert parse_sinfo(SINFO)["gpu"].shards_per_gpu == 0


def test_sharing_cells_ask_slurm_for_their_share_of_a_gpus_shards():
    sharded = Partition("gpu", None, True, False, True, shards_per_gpu=8)
    assert gpu_sharing_request(1, SETTINGS, None, grouped=True) == (None, [])
    assert gpu_sharing_request(2, SETTINGS, sharded, grouped=False) == ("shard:4", [])
    assert gpu_sharing_request(8, SETTINGS, sharded, grouped=False) == ("shard:1", [])
    cases = {
        "bundle": (2, SETTINGS, sharded, True, ["grouped", "--groups", "your profile"]),
        "two gpus": (2, {**SETTINGS, "gpus": 2}, sharded, False, ["slurm.gpus is 2"]),
        "no sinfo": (2, SETTINGS, None, False, ["sinfo did not report"]),
        "no shards": (
            2,
            SETTINGS,
            Partition("gpu", None, True, False, True),
            False,
            ["partition 'gpu' has no shards", "gres.html#Sharding"],
        ),
        "indivisible": (3, SETTINGS, sharded, False, ["valid values: 1, 2, 4, 8"]),
    }
    for name, (k, settings, partition, grouped, phrases) in cases.items():
        gres, problems = gpu_sharing_request(k, settings, partition, grouped)
        assert gres is None and len(problems) == 1, name
        assert f"resources.cells_per_gpu: {k}" in problems[0], (name, problems)
        for phrase in phrases:
            assert phrase in problems[0], (name, phrase, problems)
