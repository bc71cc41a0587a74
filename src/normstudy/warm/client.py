"""``python -m normstudy.warm ARGS``: run ``normstudy ARGS`` forked from a warm server.

Imports only the standard library (checked by tests/test_warm.py with ``-X importtime``).
Falls back to exec'ing ``python -m normstudy.cli ARGS`` -- same pid, so the parent chain
that :mod:`normstudy.parentwatch` follows is unchanged -- after one line on stderr saying
why; ``NORMSTUDY_WARM=0`` asks for that fallback.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from normstudy.parentwatch import ancestor_chain
from normstudy.warm.key import NO_SERVER_ENV, in_slurm_job, server_path, source_digest
from normstudy.warm.protocol import read_line, send_request

START_TIMEOUT = 120.0
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class NoServer(Exception):
    """Why this cell runs in a fresh process instead."""


def fresh_process(argv: list[str], reason: str) -> None:
    print(f"normstudy.warm: {reason}; running in a fresh process", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "normstudy.cli", *argv])


def connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def start_server(
    path: Path,
    digest: str,
    env: dict[str, str] | None = None,
    parent: int | None = None,
    executable: str = sys.executable,
) -> socket.socket:
    """Connect to the server at ``path``, starting it (once, under a lock) if absent; it
    imports under ``env`` (default: ours) and, given a ``parent`` pid, ends with it."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = connect(path)
        if sock is not None:
            return sock
        log = open(path.with_suffix(".log"), "ab")
        command = [executable, "-m", "normstudy.warm.server", str(path), digest]
        server = subprocess.Popen(
            command + ([str(parent)] if parent is not None else []),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            sock = connect(path)
            if sock is not None:
                return sock
            if server.poll() is not None:
                raise NoServer(f"the warm server exited with {server.returncode} (see {log.name})")
            time.sleep(0.02)
        raise NoServer(f"the warm server did not start within {START_TIMEOUT:.0f}s")


def run(argv: list[str]) -> int:
    # Now, before a server start that may outlast snakemake: a fresh process records its
    # chain within its first second too (normstudy.parentwatch.remember_ancestors).
    ancestors = ancestor_chain()
    digest = source_digest()
    path = server_path(dict(os.environ), digest)
    sock = connect(path)
    if sock is None and in_slurm_job(os.environ):
        # Only the job's batch step may start one (normstudy.warm.jobserver): a server
        # started here would live in this cell's srun step and serve this cell alone.
        why = os.environ.get(
            NO_SERVER_ENV, "its batch step starts one for a bundle of several cells"
        )
        raise NoServer(f"no warm server of SLURM job {os.environ['SLURM_JOB_ID']} ({why})")
    sock = sock or start_server(path, digest)
    umask = os.umask(0)
    os.umask(umask)
    request = {
        "umask": umask,
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "digest": digest,
        "ancestors": ancestors,
        "affinity": sorted(os.sched_getaffinity(0)),
    }
    send_request(sock, request, [0, 1, 2])
    replies = sock.makefile("r")
    first = read_line(replies)
    if first is None or first[0] != "started":
        raise NoServer(f"the warm server refused: {first[1] if first else 'no answer'}")
    print(
        f"normstudy.warm: cell pid {first[1]}, forked by {path.name}", file=sys.stderr, flush=True
    )

    def forward(signum, _frame):
        sock.sendall(f"signal {signum}\n".encode())

    for sig in FORWARDED:
        signal.signal(sig, forward)
    # From here the cell runs: a failure must not start it a second time in a fresh process.
    try:
        while (reply := read_line(replies)) is not None:
            if reply[0] == "exit":
                return reported(int(reply[1]))
    except OSError as error:
        print(f"normstudy.warm: lost the warm server: {error}", file=sys.stderr)
        return 1
    print("normstudy.warm: the warm server went away before the cell ended", file=sys.stderr)
    return 1


def reported(code: int) -> int:
    """The cell's exit status; a cell ended by a signal (128 + its number, as the shell
    reports it) is said in its log, which it could not write itself."""
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            return code
        print(
            f"normstudy.warm: the cell was ended by signal {code - 128} ({name}); the next "
            "attempt or run resumes it from its last checkpoint, if it wrote one",
            file=sys.stderr,
            flush=True,
        )
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("NORMSTUDY_WARM", "1") == "0":
        fresh_process(argv, "NORMSTUDY_WARM=0")
    try:
        return run(argv)
    except NoServer as error:
        fresh_process(argv, str(error))
    except (OSError, ValueError) as error:
        fresh_process(argv, f"no warm server ({error})")
    return 1  # not reached: fresh_process execs
