"""A warm worker: train cells forked from an interpreter that has the imports done.

A fresh ``python -m normstudy.cli train`` pays ``import torch`` (plus torch._dynamo, which
the first optimizer pulls in, pyarrow and pandas) before any training. The workflow runs
``python -m normstudy.warm train ...`` instead (:mod:`normstudy.warm.client`): a client that
imports only the standard library, connects over a Unix socket to a per-machine server
(:mod:`normstudy.warm.server`) that has those modules imported and has run no torch
computation, and hands it its argv, cwd, environment and stdin/stdout/stderr. The server
forks one process per cell, which runs the same ``normstudy.cli`` main; the client waits
for its exit status and exits with it. This is the forkserver/preload pattern of
``multiprocessing``'s forkserver and gunicorn's ``--preload`` (a fork after the imports,
before any thread pool exists), with nailgun's client/server split.

What one process per cell gives is kept: each cell is its own process (a crash ends only
it), writes to its own log (the client's fds), sees SIGTERM/SIGINT/SIGHUP forwarded by the
client and its snakemake ancestors watched as before (:mod:`normstudy.parentwatch`, from
the client's pid), and is ended with SIGTERM (checkpoint, exit 75) if the client dies.
Any failure to reach or start a server makes the client say so on stderr (the cell's log)
and exec the plain process: never a silent fallback, never a lost cell.

Inside a SLURM job a client never starts a server: the only server there is the one a
bundle's batch step starts for its cells (:mod:`normstudy.warm.jobserver`).
"""
