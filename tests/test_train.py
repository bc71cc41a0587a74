"""One training cell: determinism, divergence, checkpoint/resume and its outputs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from normstudy import provenance
from normstudy.config import ConfigError
from normstudy.grid import plan_document, plan_studies
from normstudy.schemas import CURVES_SCHEMA
from normstudy.tables import PROVENANCE_COLUMNS, aggregate
from normstudy.train import EXIT_CHECKPOINTED, learning_rate_factor, train_cell

TINY = {
    "dataset": "digits",
    "model": "mlp",
    "depth": 2,
    "width": 32,
    "norm": "batch",
    "epochs": 3,
    "batch_size": 32,
    "lr": 0.05,
}


def curves(outdir: Path) -> list[dict]:
    rows = pq.read_table(outdir / "curves.parquet").to_pylist()
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def same(a, b) -> bool:
    """Bitwise equality of nested results, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_cell_outputs_and_schema(tmp_path):
    summary = train_cell(TINY, tmp_path / "cell", threads=1)
    cell = tmp_path / "cell"
    assert sorted(p.name for p in cell.iterdir()) == [
        "config.json",
        "curves.parquet",
        "probes.parquet",
        "summary.json",
        "train.log",
    ]
    assert json.loads((cell / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["status"] == "ok" and summary["epochs_run"] == 3
    table = pq.read_table(cell / "curves.parquet")
    assert table.schema.equals(CURVES_SCHEMA, check_metadata=False)
    assert table.column("epoch").to_pylist() == [1, 2, 3]
    assert summary["final"]["test_acc"] > 0.5
    gap = summary["final"]["train_acc"] - summary["final"]["test_acc"]
    assert summary["generalization_gap"] == pytest.approx(gap)
    assert summary["trainable_parameters"] == summary["parameters"]
    assert len((cell / "train.log").read_text().splitlines()) == 5


def test_same_config_gives_bitwise_identical_curves(tmp_path):
    first = train_cell(TINY, tmp_path / "a", threads=1)
    second = train_cell(TINY, tmp_path / "b", threads=1)
    assert curves(tmp_path / "a") == curves(tmp_path / "b")
    assert first["final"] == second["final"]
    other_seed = train_cell({**TINY, "seed": 1}, tmp_path / "c", threads=1)
    assert other_seed["final"] != first["final"]


def test_norm_only_trains_only_gamma_and_beta(tmp_path):
    summary = train_cell({**TINY, "freeze": "norm"}, tmp_path / "cell", threads=1)
    trainable = summary["trainable_parameters"]
    assert trainable["weight"] == trainable["bias"] == trainable["head"] == 0
    assert trainable["norm_gamma"] == trainable["norm_beta"] == 2 * 32


def test_text_lstm_trains_on_synthetic_sentiment_and_bn_only_freezes_the_embedding(tmp_path):
    """Torri 2022 §3.1's setting end to end, tiny: token ids, the data cache, BN-only."""
    config = {
        **TINY,
        "dataset": "synthetic_sentiment",
        "dataset_options": {"n": 400},
        "model": "lstm_text",
        "model_options": {"embedding_dim": 8},
        "depth": None,
        "width": 8,
        "epochs": 2,
    }
    cache = tmp_path / "data.pt"
    summary = train_cell(config, tmp_path / "all", threads=1, data_cache=cache)
    assert math.isfinite(summary["final"]["test_loss"])
    bn_only = train_cell({**config, "freeze": "norm"}, tmp_path / "bn", threads=1, data_cache=cache)
    trainable = bn_only["trainable_parameters"]
    assert trainable["weight"] == trainable["bias"] == trainable["head"] == 0
    assert trainable["norm_gamma"] == trainable["norm_beta"] == 8 + 8


def test_random_freeze_trains_as_many_weights_as_norm_only_and_repeats(tmp_path):
    """Frankle et al. 2020's control: two random weights per channel, as many as gamma and
    beta; the choice comes from the cell's seed, so the same cell gives the same numbers."""
    first = train_cell({**TINY, "freeze": "random"}, tmp_path / "a", threads=1)
    trainable = first["trainable_parameters"]
    assert trainable["random_subset"] == 2 * 2 * 32
    assert sum(trainable.values()) == trainable["random_subset"]
    assert sum(first["parameters"].values()) == sum(
        train_cell({**TINY, "epochs": 0}, tmp_path / "c", threads=1)["parameters"].values()
    )
    again = train_cell({**TINY, "freeze": "random"}, tmp_path / "b", threads=1)
    assert curves(tmp_path / "a") == curves(tmp_path / "b")
    assert first["final"] == again["final"]


def test_random_freeze_resumes_from_its_checkpoint_as_if_uninterrupted(tmp_path):
    """The chosen entries are buffers of the model's state dict: a cell restored from a
    checkpoint continues bitwise as the uninterrupted one, chosen entries included."""
    from normstudy.config import resolve_cell_config
    from normstudy.freeze import RandomEntries
    from normstudy.train import prepare, restore_checkpoint, save_checkpoint, train_step

    config = resolve_cell_config({**TINY, "freeze": "random"})

    def cell():
        return prepare(config, data_dir=None, download=False, threads=1)

    batches = [torch.arange(32) + 32 * k for k in range(6)]
    straight, first = cell(), cell()
    for indices in batches:
        assert train_step(straight, indices) is None
    for indices in batches[:3]:
        assert train_step(first, indices) is None
    save_checkpoint(first, tmp_path / "checkpoint.pt")
    resumed = cell()
    with torch.no_grad():  # another selection: the checkpoint's must replace it
        for module in resumed.model.modules():
            if isinstance(module, RandomEntries):
                module.index.copy_(module.index.flip(0))
    assert restore_checkpoint(resumed, tmp_path / "checkpoint.pt") is None
    for indices in batches[3:]:
        assert train_step(resumed, indices) is None
    expected = straight.model.state_dict()
    for name, tensor in resumed.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_lr_schedules():
    config = {"schedule": "multistep", "milestones": [0.5, 0.75], "lr_decay": 0.1}
    config["warmup_epochs"] = 0
    factors = [learning_rate_factor(s, 160, 1, config) for s in range(160)]
    assert factors[79] == 1 and factors[80] == pytest.approx(0.1)
    assert factors[119] == pytest.approx(0.1) and factors[120] == pytest.approx(0.01)
    cosine = {**config, "schedule": "cosine"}
    assert learning_rate_factor(0, 100, 1, cosine) == 1
    assert learning_rate_factor(50, 100, 1, cosine) == pytest.approx(0.5)
    warm = {**config, "schedule": "constant", "warmup_epochs": 2}
    assert [learning_rate_factor(s, 100, 5, warm) for s in (0, 4, 9, 50)] == [0.1, 0.5, 1, 1]


def test_divergence_is_a_result(tmp_path):
    summary = train_cell({**TINY, "norm": "none", "lr": 1e4}, tmp_path / "cell", threads=1)
    assert summary["status"] == "diverged"
    assert summary["diverged_step"] is not None and summary["diverged_epoch"] == 0
    assert summary["epochs_run"] == 1 < summary["epochs_planned"]
    assert (tmp_path / "cell" / "curves.parquet").exists()
    assert "diverged" in (tmp_path / "cell" / "train.log").read_text()


def test_batch_norm_survives_lr_1_full_batch_where_plain_net_diverges(tmp_path):
    """Morwani 2020 §3: a 10-layer MLP, full-batch GD at lr = 1: BN trains, no-BN diverges."""
    morwani = {
        "dataset": "digits",
        "model": "mlp",
        "depth": 10,
        "width": 64,
        "full_batch": True,
        "lr": 1.0,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "schedule": "constant",
        "gamma_init": "ones",
        "epochs": 40,
    }
    with_bn = train_cell({**morwani, "norm": "batch"}, tmp_path / "bn", threads=1)
    without = train_cell({**morwani, "norm": "none"}, tmp_path / "none", threads=1)
    assert with_bn["status"] == "ok" and with_bn["final"]["train_acc"] > 0.5
    assert without["status"] == "diverged"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": -1}, "'lr' = -1"),
        ({"batch_size": 100000}, "larger than the training set"),
        ({"dataset": "imagenet"}, "valid datasets"),
        ({"model": "transformer"}, "valid models"),
        ({"norm": "magic"}, "valid normalizers"),
        ({"freeze": "weights"}, "valid freeze policies"),
        ({"colour": "red"}, "unknown config key"),
        ({"train_subset": 10**6}, "train_subset"),
        ({"norm": "none", "freeze": "norm"}, "nothing would train"),
        ({"channels_last": "yes"}, "'channels_last' = 'yes'"),
        ({"compile": 1}, "'compile' = 1"),
        ({"amp": "bf16"}, "'amp' = 'bf16'"),
        ({"epochs": -1}, "'epochs' = -1"),
    ],
)
def test_bad_input_refused_before_writing(tmp_path, overrides, message):
    outdir = tmp_path / "cell"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_cell({**TINY, **overrides}, outdir, threads=1)
    assert not outdir.exists()


def run_cli(config_path: Path, outdir: Path, checkpoint: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "normstudy.cli", "train", str(config_path), str(outdir)]
        + ["--checkpoint", str(checkpoint), "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


LONG = {
    **TINY,
    "epochs": 12,
    "batch_size": 8,
    "checkpoint_every": 1,
    "probes": [
        {"name": "propagation", "every_epochs": 3, "at_steps": [1, 7, 60, 200]},
        {"name": "grad_norms", "every_steps": 50},
    ],
}


def probe_records(outdir: Path) -> list[dict]:
    return pq.read_table(outdir / "probes.parquet").to_pylist()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("uninterrupted") / "cell"
    summary = train_cell(LONG, outdir, threads=1)
    assert len(probe_records(outdir)) > 0
    return summary, curves(outdir), probe_records(outdir)


def test_at_steps_records_come_after_exactly_the_listed_steps(uninterrupted):
    summary, _, records = uninterrupted
    steps = {r["step"] for r in records if r["probe"] == "propagation"}
    per_epoch = summary["steps_run"] // LONG["epochs"]
    expected = {0, 1, 7, 60, 200} | {per_epoch * e for e in range(3, 13, 3)}
    assert steps == expected


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(LONG))
    outdir, checkpoint = tmp_path / "cell", tmp_path / "ckpt" / "checkpoint.pt"
    process = run_cli(config_path, outdir, checkpoint)
    wait_for(checkpoint, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (outdir / "summary.json").exists(), "the run finished before it was killed"
    resumed = run_cli(config_path, outdir, checkpoint)
    stdout, stderr = resumed.communicate()
    assert resumed.returncode == 0, stderr.decode()
    summary = json.loads((outdir / "summary.json").read_text())
    assert summary["resumed"] == 1
    assert "resumed from" in (outdir / "train.log").read_text()
    # The run that finished the cell, and the one it resumed (kept in the checkpoint).
    (first_run,) = summary["provenance"]["earlier_runs"]
    assert set(first_run) == set(provenance.FIELDS)
    assert first_run["host"] == summary["provenance"]["host"]
    expected_summary, expected_curves, expected_probes = uninterrupted
    assert same(curves(outdir), expected_curves)
    assert same(summary["final"], expected_summary["final"])
    assert same(probe_records(outdir), expected_probes)
    assert not checkpoint.exists()


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_checkpoints_mid_epoch_and_exits_distinctly(tmp_path, uninterrupted, sent):
    """SIGTERM (SLURM's warning, Snakemake stopping a job) and SIGINT (Ctrl-C, which a
    terminal sends a local run's whole process group; before, it raised KeyboardInterrupt
    and lost the steps since the last checkpoint) both checkpoint at the next step."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({**LONG, "checkpoint_every": 0}))
    outdir, checkpoint = tmp_path / "cell", tmp_path / "checkpoint.pt"
    process = run_cli(config_path, outdir, checkpoint)
    wait_for(outdir / "train.log", process)
    time.sleep(0.5)
    process.send_signal(sent)
    _, stderr = process.communicate()
    assert process.returncode == EXIT_CHECKPOINTED, stderr.decode()
    assert f"signal {int(sent)} at step" in stderr.decode()
    assert checkpoint.exists() and not (outdir / "summary.json").exists()
    state = torch.load(checkpoint, weights_only=True)["state"]
    assert state["step"] > 0
    resumed = run_cli(config_path, outdir, checkpoint)
    _, stderr = resumed.communicate()
    assert resumed.returncode == 0, stderr.decode()
    summary = json.loads((outdir / "summary.json").read_text())
    expected_summary, expected_curves, expected_probes = uninterrupted
    assert same(curves(outdir), expected_curves)
    assert same(summary["final"], expected_summary["final"])
    assert same(probe_records(outdir), expected_probes)


def head_commit() -> tuple[str | None, bool | None]:
    """HEAD and dirtiness of the checkout of the code under test, as git itself says."""
    git = ["git", "-C", str(Path(provenance.__file__).parent)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    except OSError:
        return None, None
    if head.returncode != 0:
        return None, None
    return head.stdout.strip(), bool(status.stdout.strip())


def test_summary_and_cells_table_record_the_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "812")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "800")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    plan = plan_document(
        plan_studies({"defaults": {**TINY, "epochs": 1}, "studies": {"s": {"grid": {"seed": [0]}}}})
    )
    ((cell, config),) = plan["cells"].items()
    summary = train_cell(config, tmp_path / "cells" / cell, threads=1)
    written = json.loads((tmp_path / "cells" / cell / "summary.json").read_text())
    assert written["provenance"] == summary["provenance"]
    record = summary["provenance"]
    commit, dirty = head_commit()
    assert (record["git_commit"], record["git_dirty"]) == (commit, dirty)
    assert record["slurm_job_id"] == "812" and record["slurm_array_job_id"] == "800"
    assert record["slurm_array_task_id"] == 12 and record["cuda_visible_devices"] == ""
    assert record["device"] == summary["device"] == "cpu" and record["gpu_name"] is None
    assert record["earlier_runs"] == []
    aggregate(plan, tmp_path / "cells", tmp_path / "tables")
    table = pq.read_table(tmp_path / "tables" / "cells.parquet")
    (row,) = table.to_pylist()
    assert {key: row[key] for key in PROVENANCE_COLUMNS} == {
        key: record[key] for key in PROVENANCE_COLUMNS
    }
    assert table.schema.field("slurm_array_task_id").type == "int64"
    assert b"description" in table.schema.field("git_commit").metadata


def test_cells_table_carries_the_final_distance_from_init_of_the_norms_probe(tmp_path):
    defaults = {**TINY, "epochs": 2, "probes": ["norms"]}
    plan = plan_document(plan_studies({"defaults": defaults, "studies": {"s": {"grid": {}}}}))
    ((cell, config),) = plan["cells"].items()
    train_cell(config, tmp_path / "cells" / cell, threads=1)
    aggregate(plan, tmp_path / "cells", tmp_path / "tables")
    probes = pq.read_table(tmp_path / "cells" / cell / "probes.parquet").to_pylist()
    distances = [
        (r["step"], r["value"])
        for r in probes
        if r["key"] == "distance_from_init" and r["layer"] == "model"
    ]
    (row,) = pq.read_table(tmp_path / "tables" / "cells.parquet").to_pylist()
    assert row["final_distance_from_init"] == max(distances)[1] > 0
    assert row["final_hessian_top_eigenvalue"] is None


def test_corrupt_or_foreign_checkpoint_is_reported_and_ignored(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    summary = train_cell(TINY, tmp_path / "a", checkpoint=checkpoint, threads=1)
    assert summary["resumed"] == 0
    assert "unreadable" in capsys.readouterr().err
    assert "unreadable" in (tmp_path / "a" / "train.log").read_text()
    train_cell(
        {**TINY, "seed": 5}, tmp_path / "b", checkpoint=checkpoint, threads=1, keep_checkpoint=True
    )
    summary = train_cell(TINY, tmp_path / "c", checkpoint=checkpoint, threads=1)
    assert summary["resumed"] == 0
    assert "different config" in capsys.readouterr().err
    reference = train_cell(TINY, tmp_path / "d", threads=1)
    assert summary["final"] == reference["final"]


ALL_CHEAP_PROBES = ["grad_norms", "norm_params", "norms", "propagation", "grad_confusion"]


def test_probes_record_without_changing_training(tmp_path):
    plain = train_cell(TINY, tmp_path / "plain", threads=1)
    probes = [*ALL_CHEAP_PROBES, {"name": "hessian", "every_epochs": 2, "options": {"k": 3}}]
    probed = train_cell({**TINY, "probes": probes}, tmp_path / "probed", threads=1)
    assert curves(tmp_path / "plain") == curves(tmp_path / "probed")
    assert plain["final"] == probed["final"]
    records = pq.read_table(tmp_path / "probed" / "probes.parquet").to_pandas()
    assert set(records["probe"]) == {*ALL_CHEAP_PROBES, "hessian"}
    by_probe = records.groupby("probe")["epoch"].unique()
    assert sorted(by_probe["grad_norms"]) == [0, 1, 2, 3]
    assert sorted(by_probe["hessian"]) == [0, 2, 3]
    assert set(probed["probe_seconds"]) == {*ALL_CHEAP_PROBES, "hessian"}
    assert probed["probe_errors"] == []
    assert pq.read_table(tmp_path / "plain" / "probes.parquet").num_rows == 0


def test_a_failing_probe_is_recorded_and_the_cell_finishes(tmp_path):
    probes = [{"name": "hessian", "options": {"k": 4, "maxiter": 1, "tol": 1e-12}}]
    summary = train_cell({**TINY, "epochs": 1, "probes": probes}, tmp_path / "c", threads=1)
    assert summary["status"] == "ok"
    assert summary["probe_errors"] and "hessian" in summary["probe_errors"][0]
    records = pq.read_table(tmp_path / "c" / "probes.parquet").to_pandas()
    assert (records["key"] == "failed").any()


def test_unknown_probe_is_refused_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="valid probes"):
        train_cell({**TINY, "probes": ["curvature"]}, tmp_path / "c", threads=1)
    assert not (tmp_path / "c").exists()


TINY_CONV = {**TINY, "model": "resnet", "depth": 8, "width": 1, "epochs": 1, "batch_size": 64}


def test_channels_last_is_deterministic_and_matches_the_default_layout(tmp_path):
    default = train_cell(TINY_CONV, tmp_path / "nchw", threads=1)
    first = train_cell({**TINY_CONV, "channels_last": True}, tmp_path / "a", threads=1)
    second = train_cell({**TINY_CONV, "channels_last": True}, tmp_path / "b", threads=1)
    assert curves(tmp_path / "a") == curves(tmp_path / "b")
    assert first["final"] == second["final"]
    for key in ("train_loss", "test_loss"):
        assert first["final"][key] == pytest.approx(default["final"][key], rel=1e-3)


def test_amp_is_a_recorded_no_op_on_cpu(tmp_path):
    plain = train_cell(TINY, tmp_path / "plain", threads=1)
    amp = train_cell({**TINY, "amp": True}, tmp_path / "amp", threads=1)
    assert amp["device"] == "cpu" and amp["autocast"] is None and plain["autocast"] is None
    assert curves(tmp_path / "plain") == curves(tmp_path / "amp")
    assert "amp: true has no effect on cpu" in (tmp_path / "amp" / "train.log").read_text()
    assert "amp: true" not in (tmp_path / "plain" / "train.log").read_text()


def test_zero_epochs_evaluates_the_initial_model(tmp_path):
    summary = train_cell({**TINY, "epochs": 0}, tmp_path / "cell", threads=1)
    assert summary["status"] == "ok" and summary["epochs_run"] == summary["steps_run"] == 0
    assert 0 <= summary["final"]["test_acc"] <= 1 and summary["best_val_epoch"] is None
    assert pq.read_table(tmp_path / "cell" / "curves.parquet").num_rows == 0


def test_prepare_keeps_deterministic_kernels_on_without_importing_inductor():
    code = (
        "import sys, torch; from normstudy.train import use_deterministic_algorithms; "
        "use_deterministic_algorithms(compiled=False); "
        "print(torch.are_deterministic_algorithms_enabled(), "
        "torch.is_deterministic_algorithms_warn_only_enabled(), "
        "torch.utils.deterministic.fill_uninitialized_memory, "
        "'torch._inductor.config' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False", "False"]


@pytest.mark.slow
def test_compile_trains_and_keeps_state_dict_names(tmp_path):
    config = {**TINY_CONV, "epochs": 2}
    plain = train_cell(config, tmp_path / "plain", threads=1, keep_checkpoint=True)
    compiled = train_cell(
        {**config, "compile": True}, tmp_path / "compiled", threads=1, keep_checkpoint=True
    )
    assert compiled["status"] == "ok"
    assert compiled["final"]["train_loss"] == pytest.approx(plain["final"]["train_loss"], rel=1e-2)
    names = torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=True)["model"].keys()
    compiled_checkpoint = torch.load(tmp_path / "compiled" / "checkpoint.pt", weights_only=True)
    assert compiled_checkpoint["model"].keys() == names


@pytest.fixture
def batches(monkeypatch) -> list[list[int]]:
    """The example indices of every training step, in order (train_step still runs)."""
    from normstudy.train import loop

    recorded: list[list[int]] = []
    original = loop.train_step

    def recording_step(cell, indices):
        recorded.append(indices.tolist())
        return original(cell, indices)

    monkeypatch.setattr(loop, "train_step", recording_step)
    return recorded


@pytest.mark.parametrize(
    ("train_subset", "batch_size", "sizes"),
    [(25, 16, [16, 9]), (33, 16, [16, 17]), (32, 16, [16, 16])],
)
def test_unshuffled_epochs_train_on_every_example_in_a_fixed_order(
    tmp_path, batches, train_subset, batch_size, sizes
):
    """Through ``normstudy train``: every epoch uses each example once, in the same order,
    keeping a partial last batch and merging a one-example remainder (Morwani 2020 §5)."""
    from normstudy import cli

    epochs = 3
    config = {**TINY, "epochs": epochs, "shuffle": False, "train_subset": train_subset}
    config["batch_size"] = batch_size
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["train", str(path), str(tmp_path / "cell"), "--threads", "1"]) == 0
    per_epoch = len(sizes)
    assert len(batches) == epochs * per_epoch
    epoch_orders = [sum(batches[e * per_epoch : (e + 1) * per_epoch], []) for e in range(epochs)]
    assert [len(b) for b in batches[:per_epoch]] == sizes
    assert all(order == list(range(train_subset)) for order in epoch_orders)
    summary = json.loads((tmp_path / "cell" / "summary.json").read_text())
    assert summary["steps_run"] == epochs * per_epoch


def test_shuffled_epochs_keep_full_batches_of_a_fresh_permutation(tmp_path, batches):
    train_cell({**TINY, "epochs": 2, "train_subset": 25, "batch_size": 16}, tmp_path / "c")
    assert [len(b) for b in batches] == [16, 16]
    assert batches[0] != batches[1]


def test_probes_get_the_optimizer_and_the_cross_entropy_without_regnorms_term(
    tmp_path, monkeypatch
):
    """ "Is Batch Norm unique?" §6 and Santurkar et al. §2.2, §3.1 measure the data loss;
    ICS steps by the optimizer's own update (Santurkar et al. §2.2)."""
    from normstudy.norms import collect_regularizers
    from normstudy.probes import runner

    checks = []
    original = runner.run_probe

    def checking_run_probe(probe, ctx):
        ctx.model.train()
        logits = ctx.model(ctx.probe_x[:16])
        regularizer = collect_regularizers(ctx.model)
        cross_entropy = torch.nn.functional.cross_entropy(logits, ctx.probe_y[:16])
        checks.append(
            (
                ctx.loss_fn(logits, ctx.probe_y[:16]).item() == cross_entropy.item(),
                regularizer is not None and regularizer.item() > 0,
                isinstance(ctx.optimizer, torch.optim.SGD),
            )
        )
        return original(probe, ctx)

    monkeypatch.setattr(runner, "run_probe", checking_run_probe)
    config = {**TINY, "norm": "regnorm", "epochs": 1, "probes": [{"name": "smoothness"}]}
    summary = train_cell(config, tmp_path / "cell", threads=1)
    assert summary["probe_errors"] == []
    assert checks and all(all(check) for check in checks)
