"""The warm worker (normstudy.warm): a forked cell is the same cell as a fresh process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from normstudy.config import resolve_cell_config
from normstudy.datacache import build_cache
from normstudy.warm.jobserver import (
    THREAD_VARIABLES,
    bundled_cells,
    cell_environment,
    serve_bundle,
)
from normstudy.warm.key import NO_SERVER_ENV, job_server_path, server_key, source_digest
from normstudy.warm.protocol import read_line, send_request

REPO = Path(__file__).resolve().parents[1]
CELL = {"model": "mlp", "depth": 1, "width": 16, "epochs": 2, "batch_size": 32}
# Columns that hold wall-clock times: the only ones two runs of a cell may differ in.
TIMING = ("seconds", "time")


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory):
    """A private socket directory: these tests start (and idle out) their own server."""
    path = tmp_path_factory.mktemp("xdg")
    path.chmod(0o700)
    return path


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.pt"
    build_cache(resolve_cell_config(CELL), path)
    return path


def environment(runtime_dir: Path, warm: bool = True) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "XDG_RUNTIME_DIR": str(runtime_dir),
        "NORMSTUDY_WARM": "1" if warm else "0",
        "NORMSTUDY_WARM_IDLE": "60",
    }


def train_args(config: dict, outdir: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "train", "--json", json.dumps(config), str(outdir), "--data-cache", str(cache),
        "--threads", "1", *extra,
    ]  # fmt: skip


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "normstudy.warm", *args], stdout=out, stderr=out, env=env
        )


def run(args: list[str], env: dict, log: Path) -> int:
    return start(args, env, log).wait(timeout=300)


def same_outputs(first: Path, second: Path) -> None:
    def final(path):
        return json.loads((path / "summary.json").read_text())["final"]

    assert final(first) == final(second)
    for name in ("curves.parquet", "probes.parquet"):
        a, b = pq.read_table(first / name), pq.read_table(second / name)
        kept = [c for c in a.column_names if not any(t in c for t in TIMING)]
        assert a.select(kept).equals(b.select(kept)), name


def cell_pid(log: Path) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("normstudy.warm: cell pid "):
                return int(line.split()[3].rstrip(","))
        time.sleep(0.1)
    raise AssertionError(f"no cell pid in {log}: {log.read_text()}")


def wait_gone(pid: int, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or " Z " in Path(f"/proc/{pid}/stat").read_text():
            return True
        time.sleep(0.1)
    return False


def test_the_client_imports_nothing_heavy():
    heavy = "('torch', 'numpy', 'pandas', 'pyarrow')"
    code = (
        "import sys, normstudy.warm.client; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_warm_results_are_bitwise_those_of_a_fresh_process(runtime_dir, data_cache, tmp_path):
    assert (
        run(
            train_args(CELL, tmp_path / "warm", data_cache),
            environment(runtime_dir),
            tmp_path / "warm.log",
        )
        == 0
    )
    log = (tmp_path / "warm.log").read_text()
    assert "cell pid" in log and "fresh process" not in log, log
    fresh_env = environment(runtime_dir, warm=False)
    assert (
        run(train_args(CELL, tmp_path / "fresh", data_cache), fresh_env, tmp_path / "fresh.log")
        == 0
    )
    assert "NORMSTUDY_WARM=0; running in a fresh process" in (tmp_path / "fresh.log").read_text()
    same_outputs(tmp_path / "warm", tmp_path / "fresh")


def test_a_failing_cell_leaves_the_server_serving_the_next(runtime_dir, data_cache, tmp_path):
    env = environment(runtime_dir)
    bad = run(
        train_args({**CELL, "model": "nosuch"}, tmp_path / "bad", data_cache),
        env,
        tmp_path / "bad.log",
    )
    assert bad != 0 and "cell pid" in (tmp_path / "bad.log").read_text()
    crash = start(
        train_args({**CELL, "epochs": 50}, tmp_path / "crash", data_cache),
        env,
        tmp_path / "crash.log",
    )
    os.kill(cell_pid(tmp_path / "crash.log"), signal.SIGSEGV)
    assert crash.wait(timeout=60) == 128 + signal.SIGSEGV
    assert "ended by signal 11 (SIGSEGV)" in (tmp_path / "crash.log").read_text()
    assert run(train_args(CELL, tmp_path / "good", data_cache), env, tmp_path / "good.log") == 0
    assert "fresh process" not in (tmp_path / "good.log").read_text()
    assert (tmp_path / "good" / "summary.json").exists()


def test_sigterm_checkpoints_and_the_cell_resumes_to_the_same_result(
    runtime_dir, data_cache, tmp_path
):
    env = environment(runtime_dir)
    # Long enough that the signal comes mid-run on an idle machine too: sent once the
    # first epoch's checkpoint exists, not after a fixed sleep.
    config = {**CELL, "epochs": 300}
    checkpoint = ["--checkpoint", str(tmp_path / "ck.pt")]
    client = start(
        train_args(config, tmp_path / "cut", data_cache, *checkpoint), env, tmp_path / "a.log"
    )
    cell_pid(tmp_path / "a.log")
    deadline = time.monotonic() + 120
    while not (tmp_path / "ck.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=120) == 75, (tmp_path / "a.log").read_text()
    assert (tmp_path / "ck.pt").exists()
    assert (
        run(train_args(config, tmp_path / "cut", data_cache, *checkpoint), env, tmp_path / "b.log")
        == 0
    )
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["resumed"] > 0
    assert run(train_args(config, tmp_path / "whole", data_cache), env, tmp_path / "c.log") == 0
    same_outputs(tmp_path / "cut", tmp_path / "whole")


def test_sigkill_of_the_client_ends_the_cell(runtime_dir, data_cache, tmp_path):
    env = environment(runtime_dir)
    client = start(
        train_args({**CELL, "epochs": 200}, tmp_path / "cell", data_cache), env, tmp_path / "a.log"
    )
    pid = cell_pid(tmp_path / "a.log")
    client.kill()
    client.wait()
    assert wait_gone(pid), f"cell {pid} still runs after its client was killed"


def test_two_clients_at_once_each_get_their_cell_and_their_own_log(
    runtime_dir, data_cache, tmp_path
):
    env = environment(runtime_dir)
    clients = [
        start(
            train_args({**CELL, "seed": seed}, tmp_path / f"c{seed}", data_cache),
            env,
            tmp_path / f"{seed}.log",
        )
        for seed in (0, 1)
    ]
    assert [c.wait(timeout=300) for c in clients] == [0, 0]
    for seed, other in ((0, 1), (1, 0)):
        log = (tmp_path / f"{seed}.log").read_text()
        # The cells' directories, not bare "c0"/"c1": the socket's random name may hold those.
        mine, theirs = str(tmp_path / f"c{seed}"), str(tmp_path / f"c{other}")
        assert mine in log and theirs not in log and "fresh process" not in log


def test_a_server_of_other_code_is_not_used(runtime_dir, data_cache, tmp_path):
    digest = source_digest()
    assert server_key({}, digest) != server_key({}, "0" * 64)
    env = environment(runtime_dir)
    assert run(["--help"], env, tmp_path / "h.log") == 0  # the server is up
    path = runtime_dir / "normstudy-warm" / f"{server_key(env, digest)}.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        request = {"argv": ["--help"], "cwd": str(tmp_path), "env": env, "digest": "0" * 64}
        send_request(sock, {**request, "ancestors": [], "affinity": [0], "umask": 0o22}, [0, 1, 2])
        reply = read_line(sock.makefile("r"))
    assert reply is not None and reply[0] == "refused" and "stale" in reply[1]


def test_a_warm_cell_follows_its_clients_umask(runtime_dir, data_cache, tmp_path):
    # The server is started (or already runs) under this process's umask, 022 here.
    assert run(["--help"], environment(runtime_dir), tmp_path / "h.log") == 0
    args = train_args({**CELL, "epochs": 1}, tmp_path / "cell", data_cache)
    with open(tmp_path / "a.log", "w") as out:
        client = subprocess.Popen(
            [sys.executable, "-m", "normstudy.warm", *args], stdout=out, stderr=out,
            env=environment(runtime_dir), preexec_fn=lambda: os.umask(0o077),
        )  # fmt: skip
    assert client.wait(timeout=300) == 0
    assert "cell pid" in (tmp_path / "a.log").read_text()
    assert (tmp_path / "cell" / "summary.json").stat().st_mode & 0o077 == 0


def test_a_warm_cell_that_raises_leaves_its_traceback_in_its_log(runtime_dir, data_cache, tmp_path):
    """Before: the forked cell ended with os._exit before the interpreter could print an
    uncaught exception, so a crashing warm cell left a log with no error at all. The crash
    is injected by tests/slurm/inject (on PYTHONPATH, so the server imports it)."""
    crash = tmp_path / "crash.json"
    crash.write_text(json.dumps({"cell": "crashing"}))
    env = environment(runtime_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "slurm" / "inject"), SRC])
    env["NORMSTUDY_TEST_CRASH_FILE"] = str(crash)
    args = train_args(CELL, tmp_path / "cell", data_cache, "--checkpoint")
    code = run([*args, str(tmp_path / "crashing.pt")], env, tmp_path / "a.log")
    log = (tmp_path / "a.log").read_text()
    assert code == 1 and "cell pid" in log, log
    assert "Traceback (most recent call last)" in log, log
    assert "RuntimeError: injected crash for cell crashing" in log, log


def test_a_warm_cell_keeps_its_clients_resource_limits(runtime_dir, data_cache, tmp_path):
    """Before: a cell forked by a server started without ``ulimit -f`` wrote a checkpoint
    over the client's file-size limit. A client under other limits gets its own server,
    started under its limits, and its cell fails as a fresh process would: exit 74 with
    "File too large" (a fresh interpreter ignores SIGXFSZ, and so does a forked cell)."""
    import resource

    assert run(["--help"], environment(runtime_dir), tmp_path / "h.log") == 0  # unlimited
    limit = 64 * 1024  # below this wide MLP's checkpoint (1 MB), above every other file

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    config = {**CELL, "depth": 2, "width": 512, "checkpoint_every": 1}
    args = train_args(config, tmp_path / "cell", data_cache, "--keep-checkpoint")
    with open(tmp_path / "a.log", "w") as out:
        client = subprocess.Popen(
            [sys.executable, "-m", "normstudy.warm", *args], stdout=out, stderr=out,
            env=environment(runtime_dir), preexec_fn=limited,
        )  # fmt: skip
    client.wait(timeout=300)
    log = (tmp_path / "a.log").read_text()
    assert client.returncode == 74, log
    assert "cell pid" in log and "File too large" in log, log
    assert not (tmp_path / "cell" / "summary.json").exists()
    assert server_key({}, "d", limits=["RLIMIT_FSIZE=(1, 1)"]) != server_key({}, "d", limits=[])


# The warm server of a SLURM bundle (normstudy.warm.jobserver), without SLURM: a process
# that stands in for the bundle's batch step starts it, clients with the environment of the
# bundle's srun steps use it. tests/slurm runs the same through a real SLURM.

SRC = str(REPO / "src")
BATCH = [
    "snakemake", "--target-jobs", "train:cell=a", "train:cell=b", "--allowed-rules", "train",
    "--local-groupid", "c83f65ec", "--cores", "2", "--mode", "remote",
]  # fmt: skip


def test_only_the_batch_step_of_a_bundle_starts_a_server():
    job = {"SLURM_JOB_ID": "7"}
    assert bundled_cells(BATCH, job) == 2
    assert bundled_cells(BATCH, {}) == 0  # not inside a SLURM job
    assert bundled_cells(BATCH, {**job, "SLURM_STEP_ID": "0"}) == 0  # a cell's srun step
    one_job = [a for a in BATCH if a not in ("--local-groupid", "c83f65ec")]
    assert bundled_cells(one_job, job) == 0  # a job that is no group
    others = [a.replace("train:", "plot:") for a in BATCH]
    assert bundled_cells(others, job) == 0  # a group of other rules


def test_the_batch_step_and_its_steps_agree_on_the_server(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    digest = source_digest()
    batch = {"SLURM_JOB_ID": "7", "SLURM_CPUS_ON_NODE": "2", "PATH": "/usr/bin"}
    server_env = cell_environment(batch, 2, SRC)
    # A step: what srun and Snakemake's shell set, the job's other SLURM values dropped.
    step = {
        "SLURM_JOB_ID": "7", "SLURM_STEP_ID": "3", "CUDA_VISIBLE_DEVICES": "0", "PATH": "/usr/bin",
        "PYTHONPATH": SRC, **{name: "2" for name in THREAD_VARIABLES},
    }  # fmt: skip
    path = job_server_path(server_env, digest)
    assert path == job_server_path(step, digest)
    assert path.name.startswith("job-")
    # Another job, other threads or another PYTHONPATH is another server.
    assert path != job_server_path({**step, "SLURM_JOB_ID": "8"}, digest)
    assert path != job_server_path({**step, "OMP_NUM_THREADS": "1"}, digest)
    assert path != job_server_path({**step, "PYTHONPATH": "/elsewhere"}, digest)


BATCH_STEP = textwrap.dedent(
    """
    import os, subprocess, sys, json
    from normstudy.warm.jobserver import serve_bundle
    argv = json.loads(os.environ["BATCH_ARGV"])
    print(serve_bundle(argv, os.environ, 1, os.environ["CELL_PYTHONPATH"]), flush=True)
    clients = [subprocess.Popen([sys.executable, "-m", "normstudy.warm", *json.loads(a)],
                                env=json.loads(e), stdout=open(l, "w"), stderr=subprocess.STDOUT)
               for a, e, l in json.loads(sys.stdin.read())]
    sys.exit(max(c.wait(timeout=300) for c in clients))
    """
)


def step_environment(runtime: Path, step: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMP_", "MKL_"))}
    env.update({name: "1" for name in THREAD_VARIABLES})
    env.update(
        {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": str(step), "PYTHONPATH": SRC},
        XDG_RUNTIME_DIR=str(runtime),
        NORMSTUDY_WARM="1",
    )
    return env


@pytest.fixture
def runtime(tmp_path_factory):
    """A short private directory: a socket's path must fit AF_UNIX's 108 bytes."""
    path = tmp_path_factory.mktemp("xdg")
    path.chmod(0o700)
    return path


def test_a_bundles_cells_are_forked_by_its_batch_steps_server(runtime, data_cache, tmp_path):
    batch_env = {**step_environment(runtime, 0), "CELL_PYTHONPATH": SRC}
    batch_env["BATCH_ARGV"] = json.dumps(BATCH)
    for name in ("SLURM_STEP_ID", *THREAD_VARIABLES):
        batch_env.pop(name)
    cells = [
        (json.dumps(train_args({**CELL, "seed": seed}, tmp_path / f"c{seed}", data_cache)),
         json.dumps(step_environment(runtime, seed)), str(tmp_path / f"c{seed}.log"))
        for seed in (0, 1)
    ]  # fmt: skip
    batch = subprocess.run(
        [sys.executable, "-c", BATCH_STEP], input=json.dumps(cells), env=batch_env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert batch.returncode == 0, batch.stdout + batch.stderr
    served = batch.stdout.splitlines()[0]
    assert served.endswith("serves the 2 cells of this bundle"), served
    socket_path = runtime / "normstudy-warm" / served.split()[3]
    for seed in (0, 1):
        log = (tmp_path / f"c{seed}.log").read_text()
        assert f"forked by {socket_path.name}" in log and "fresh process" not in log, log
    # The server ends with the process that started it, and takes its lock file along.
    deadline = time.monotonic() + 30
    while socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not socket_path.exists()
    assert not socket_path.with_suffix(".lock").exists()
    # Bitwise the results of a fresh process.
    fresh = tmp_path / "fresh"
    env = {**step_environment(runtime, 9), "NORMSTUDY_WARM": "0"}
    args = train_args({**CELL, "seed": 1}, fresh, data_cache)
    subprocess.run([sys.executable, "-m", "normstudy.cli", *args], env=env, check=True)
    same_outputs(tmp_path / "c1", fresh)


def test_a_cell_in_a_slurm_job_without_its_server_runs_fresh_and_starts_none(
    runtime, data_cache, tmp_path
):
    env = step_environment(runtime, 0)
    args = train_args(CELL, tmp_path / "cell", data_cache)
    result = subprocess.run(
        [sys.executable, "-m", "normstudy.warm", *args], env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "normstudy.warm: no warm server of SLURM job 4242 (" in result.stderr
    assert result.stderr.count("no warm server") == 1, result.stderr
    assert "running in a fresh process" in result.stderr
    assert (tmp_path / "cell" / "summary.json").exists()
    assert not list((runtime / "normstudy-warm").glob("*.sock"))


def test_a_bundle_of_one_cell_starts_no_server_and_its_cell_says_why(runtime):
    batch = {"SLURM_JOB_ID": "7", "XDG_RUNTIME_DIR": str(runtime)}
    one_cell = [a for a in BATCH if a != "train:cell=b"]
    message = serve_bundle(one_cell, batch, 1, SRC)
    assert message is not None and "a bundle of one cell" in message
    assert "a bundle of one cell" in batch[NO_SERVER_ENV]  # inherited by the cell's step
    assert not list((runtime / "normstudy-warm").glob("*.sock"))
    assert serve_bundle(BATCH, {}, 1, SRC) is None  # not a batch step
    step = {**batch, "SLURM_STEP_ID": "0", "PYTHONPATH": SRC, "NORMSTUDY_WARM": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "normstudy.warm", "--help"], env=step, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no warm server of SLURM job 7 (a bundle of one cell" in result.stderr
