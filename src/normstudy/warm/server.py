"""``python -m normstudy.warm.server SOCKET DIGEST [PARENT]``: fork a process per cell.

Imports what a train command imports (torch, torch._dynamo, numpy, pyarrow, pandas,
normstudy.cli and normstudy.train) and runs no torch computation, so no OpenMP/MKL pool or
other thread exists when it forks (checked at start: it exits, and clients fall back, if
its process has more than one thread). Per connection it forks a supervisor, which forks
the cell and relays signals and the exit status; the server reaps and exits after
``IDLE_SECONDS`` without a connection, or once the process ``PARENT`` (the batch step's
snakemake, for the server of a SLURM job) has ended.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

from normstudy.warm.key import source_digest
from normstudy.warm.protocol import read_line, receive_request

# How long an unused server stays; NORMSTUDY_WARM_IDLE (seconds) overrides it (tests).
IDLE_SECONDS = float(os.environ.get("NORMSTUDY_WARM_IDLE", 300))


def preload() -> int:
    """Import what a cell imports; returns how many threads torch and normstudy added.

    numpy's OpenBLAS pool and pyarrow's jemalloc background thread start at import; both
    libraries register pthread_atfork handlers that quiesce them around a fork (OpenBLAS
    ``blas_thread_shutdown_``, jemalloc ``prefork``/``postfork``). Torch's OpenMP pool
    starts at the first parallel operation, which the server never runs: a thread added by
    the later imports is a pool we know nothing about, and the server refuses to fork it."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    known = thread_count()
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401  (what torch.optim pulls in at the first optimizer)

    import normstudy.cli  # noqa: F401
    import normstudy.train  # noqa: F401

    return thread_count() - known


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def run_cell(request: dict, fds: list[int]) -> None:
    """In the forked cell: become the client's process as far as the cell can tell."""
    from normstudy import parentwatch
    from normstudy.cli import main

    for sig in range(1, signal.NSIG):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    # What a fresh interpreter installs at start: Ctrl-C raises KeyboardInterrupt, and a
    # closed pipe or a file over the size limit (ulimit -f) is an OSError the cell reports
    # (exit 74), not a kill by SIGPIPE/SIGXFSZ.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGPIPE", "SIGXFSZ"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.sched_setaffinity(0, request["affinity"])
    # The cell's ancestors are the client's: watch snakemake through them.
    parentwatch.inherit_ancestors(request["ancestors"])
    sys.argv = ["normstudy", *request["argv"]]
    code = 1
    try:
        code = main(request["argv"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException as error:
        # As the interpreter does for an uncaught exception: the traceback on stderr (the
        # cell's log), then status 1, or 130 after Ctrl-C (os._exit below would skip both).
        sys.excepthook(type(error), error, error.__traceback__)
        code = 130 if isinstance(error, KeyboardInterrupt) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def supervise(conn: socket.socket, digest: str) -> int:
    """In the supervisor: start the cell, forward signals, report its exit status."""
    try:
        request, fds = receive_request(conn)
    except ConnectionError:
        return 0  # gone before its request: killed, or only checking the server is up
    if request.get("digest") != digest:
        conn.sendall(b"refused the server runs other code (stale digest)\n")
        return 0
    cell = os.fork()
    if cell == 0:
        conn.close()
        run_cell(request, fds)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"started {cell}\n".encode())
    pidfd = os.pidfd_open(cell)
    stream = conn.makefile("r")
    client_open = True
    while True:
        watched = [pidfd, conn] if client_open else [pidfd]
        ready, _, _ = select.select(watched, [], [])
        if pidfd in ready:
            _, status = os.waitpid(cell, 0)
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            try:
                conn.sendall(f"exit {code}\n".encode())
            except OSError:
                pass
            return 0
        message = read_line(stream)
        if message is None:
            # The client is gone (SIGKILL): checkpoint and stop, as parentwatch would.
            client_open = False
            os.kill(cell, signal.SIGTERM)
        elif message[0] == "signal":
            os.kill(cell, int(message[1]))


def serve(path: Path, digest: str, parent: int | None = None) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    listener.bind(str(temporary))
    listener.listen(16)
    os.replace(temporary, path)  # the socket appears only once it accepts
    listener.settimeout(1.0)
    children: set[int] = set()
    last = time.monotonic()
    # Where SLURM tracks processes by pid rather than cgroup, nothing else would end a
    # job's server with its job.
    while (children or time.monotonic() - last < IDLE_SECONDS) and (
        parent is None or os.getppid() == parent
    ):
        for pid in list(children):
            if os.waitpid(pid, os.WNOHANG)[0]:
                children.discard(pid)
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        last = time.monotonic()
        pid = os.fork()
        if pid == 0:
            listener.close()
            conn.settimeout(None)
            os._exit(supervise(conn, digest))
        conn.close()
        children.add(pid)
    # Unlink first so no client connects any more, then serve those already queued.
    path.unlink(missing_ok=True)
    listener.setblocking(False)
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            break
        if os.fork() == 0:
            listener.close()
            conn.setblocking(True)
            os._exit(supervise(conn, digest))
        conn.close()


def main() -> int:
    path, digest = Path(sys.argv[1]), sys.argv[2]
    parent = int(sys.argv[3]) if len(sys.argv) > 3 else None
    added = preload()
    if source_digest() != digest:
        print("normstudy.warm: the code changed while the server started", file=sys.stderr)
        return 1
    if added:
        print(
            f"normstudy.warm: importing torch and normstudy started {added} threads; a "
            "fork would copy a broken thread pool: not serving",
            file=sys.stderr,
        )
        return 1
    serve(path, digest, parent)
    if parent is not None:
        # A SLURM job's server is the only user of its lock and log: none piles up per job.
        path.with_suffix(".lock").unlink(missing_ok=True)
        log = path.with_suffix(".log")
        if log.exists() and log.stat().st_size == 0:
            log.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
