"""A real single-node SLURM cluster on this machine, for tests and for developers.

It runs ``munged``, ``slurmctld`` and ``slurmd`` (Debian's ``slurmctld slurmd
slurm-client munge``, see ``install.sh``) out of one directory: its own ``slurm.conf`` (no
cgroups, no accounting daemon, job completions in a text file), free TCP ports, state, logs
and PID files. Outside it are its munge key and socket (``munge_dir_for``: the ``munge``
user must reach them) and ``/etc/slurm/slurm.conf``, a copy of its config: ``srun`` inside
a Snakemake job step runs without ``SLURM_CONF`` (snakemake-executor-plugin-slurm-jobstep
drops the ``SLURM_*`` variables), so the client tools must find the config where they look
by default. A ``/etc/slurm/slurm.conf`` that this harness did not write is never replaced.
There is no systemd here: the daemons are started directly and stopped by their PIDs.

The node has two GPUs that SLURM allocates as GRES (``gres.conf`` with
``AutoDetect=off`` on character devices ``nvidia0`` and ``nvidia1`` that the harness
creates; a job that asks for one sees ``CUDA_VISIBLE_DEVICES``; no real GPU is behind
them), and three partitions on it: ``cpu`` (the default), ``gpu`` and ``short`` (the GPU
partition with a time limit of ``SHORT_MINUTES``, for chains of jobs).

Developer use (as root)::

    bash tests/slurm/install.sh                       # apt-get the packages (once)
    python tests/slurm/cluster.py up /tmp/slurm       # prints: export SLURM_CONF=...
    python tests/slurm/cluster.py down /tmp/slurm
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol")
PARTITIONS = ("cpu", "gpu", "short")
SHORT_MINUTES = 2
GPUS = 2
SHARDS_PER_GPU = 2
MEM_PER_CPU_MB = 1000
START_TIMEOUT = 60.0
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by normstudy tests/slurm/cluster.py"


class ClusterUnavailable(RuntimeError):
    """SLURM cannot run here; the message says why."""


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started on this machine, or None if it can."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
    if missing:
        return (
            f"SLURM is not installed ({', '.join(missing)} not found); "
            "install it with: bash tests/slurm/install.sh (Debian/Ubuntu, as root)"
        )
    if os.geteuid() != 0:
        return "starting slurmd needs root (it launches jobs as their user)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "there is no 'munge' user (the munge package creates it)"
    if SYSTEM_CONF.exists() and MARKER not in SYSTEM_CONF.read_text():
        return f"{SYSTEM_CONF} exists and belongs to another SLURM setup; not replacing it"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_memory_mb() -> int:
    """Memory the node offers to jobs: half of MemTotal, capped at 16 GB."""
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return min(int(line.split()[1]) // 1024 // 2, 16000)
    raise ClusterUnavailable("no MemTotal in /proc/meminfo")


def slurm_conf(
    root: Path, munge_dir: Path, node: str, cpus: int, memory_mb: int, ports: tuple[int, int]
) -> str:
    limits = {"short": str(SHORT_MINUTES)}
    partitions = "\n".join(
        f"PartitionName={name} Nodes={node} Default={'YES' if i == 0 else 'NO'} "
        f"MaxTime={limits.get(name, 'INFINITE')} State=UP"
        for i, name in enumerate(PARTITIONS)
    )
    gres = f"gpu:{GPUS},shard:{GPUS * SHARDS_PER_GPU}"
    return f"""\
{MARKER}
ClusterName=normstudy-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_dir}/munge.socket.2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={MEM_PER_CPU_MB}
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
MinJobAge=3600
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/builtin
InactiveLimit=0
KillWait=30
SlurmdTimeout=300
GresTypes=gpu,shard
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres={gres} State=UNKNOWN
{partitions}
"""


class Cluster:
    """The daemons of one test cluster rooted at ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.conf = self.root / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.munge_dir = munge_dir_for(self.root)

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process that talks to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A client command (``squeue``, ``scancel``, ...) against this cluster."""
        result = subprocess.run(command, env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
        return result

    def start(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise ClusterUnavailable(reason)
        for sub in ("state", "spool", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.munge_dir.mkdir(exist_ok=True)
        self.start_munge()
        ports = (free_port(), free_port())
        text = slurm_conf(
            self.root, self.munge_dir, self.node, os.cpu_count() or 1, node_memory_mb(), ports
        )
        self.conf.write_text(text)
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.write_text(text)
        gres = self.gres_conf()
        for directory in (self.root, SYSTEM_CONF.parent):
            (directory / "gres.conf").write_text(gres)
        self.daemon("slurmctld", "slurmctld", "-i", "-f", str(self.conf))
        self.daemon("slurmd", "slurmd", "-f", str(self.conf))
        self.wait_until_idle()

    def gres_conf(self) -> str:
        """GPUs as GRES on device files: SLURM sets ``CUDA_VISIBLE_DEVICES`` only for
        character devices (checked with SLURM 22.05: plain files are allocated
        but not exported)."""
        devices = self.root / "dev"
        devices.mkdir(exist_ok=True)
        for index in range(GPUS):
            path = devices / f"nvidia{index}"
            if not path.exists():
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(195, index))
        return (
            f"{MARKER}\nAutoDetect=off\n"
            f"NodeName={self.node} Name=gpu File={devices}/nvidia[0-{GPUS - 1}]\n"
            + "".join(
                f"NodeName={self.node} Name=shard Count={SHARDS_PER_GPU} "
                f"File={devices}/nvidia{index}\n"
                for index in range(GPUS)
            )
        )

    def start_munge(self) -> None:
        munge_dir = self.munge_dir
        munge = pwd.getpwnam("munge")
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for path in (munge_dir, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        munge_dir.chmod(0o755)
        result = subprocess.run(
            [
                "runuser",
                "-u",
                "munge",
                "--",
                "munged",
                f"--socket={munge_dir}/munge.socket.2",
                f"--key-file={key}",
                f"--pid-file={munge_dir}/munged.pid",
                f"--log-file={munge_dir}/munged.log",
                f"--seed-file={munge_dir}/munged.seed",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ClusterUnavailable(
                f"munged did not start: {result.stderr.strip()}\n{self.log_tail('munged')}"
            )
        self.wait_for_file(munge_dir / "munged.pid", "munged")

    def daemon(self, name: str, *command: str) -> None:
        """Start a daemon that forks into the background and writes its PID file."""
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ClusterUnavailable(
                f"{name} did not start: {result.stderr.strip()}\n{self.log_tail(name)}"
            )
        self.wait_for_file(self.root / "run" / f"{name}.pid", name)

    def wait_for_file(self, path: Path, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not (path.exists() and path.read_text().strip()):
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"{name} wrote no PID file {path}\n{self.log_tail(name)}")
            time.sleep(0.1)

    def wait_until_idle(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            result = self.run("sinfo", "-h", "-N", "-o", "%T", check=False)
            state = result.stdout.strip() or result.stderr.strip()
            if result.returncode == 0 and state.split("\n")[0] == "idle":
                return
            time.sleep(0.2)
        raise ClusterUnavailable(
            f"node {self.node} not idle after {START_TIMEOUT:.0f} s (sinfo: {state!r})\n"
            f"{self.log_tail('slurmctld')}\n{self.log_tail('slurmd')}"
        )

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.munge_dir / "munged.log" if name == "munged" else self.root / f"log/{name}.log"
        if not path.exists():
            return f"({path} does not exist)"
        return f"last lines of {path}:\n" + "\n".join(path.read_text().splitlines()[-lines:])

    def pid_files(self) -> list[Path]:
        return [
            self.root / "run" / "slurmd.pid",
            self.root / "run" / "slurmctld.pid",
            self.munge_dir / "munged.pid",
        ]

    def stop(self) -> None:
        """Stop slurmd, slurmctld and munged by their PIDs, waiting until each is gone."""
        for path in self.pid_files():
            if not path.exists():
                continue
            pid = int(path.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 30
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
            path.unlink(missing_ok=True)
        if SYSTEM_CONF.exists() and f"{self.root}/" in SYSTEM_CONF.read_text():
            SYSTEM_CONF.unlink()
            gres = SYSTEM_CONF.parent / "gres.conf"
            if gres.exists() and MARKER in gres.read_text():
                gres.unlink()
        shutil.rmtree(self.munge_dir, ignore_errors=True)

    def completed_jobs(self) -> list[dict[str, str]]:
        """The job completion records (``JobCompType=jobcomp/filetxt``), one per finished job."""
        path = self.root / "log" / "jobcomp.txt"
        if not path.exists():
            return []
        return [
            dict(field.split("=", 1) for field in line.split() if "=" in field)
            for line in path.read_text().splitlines()
        ]


def munge_dir_for(root: Path) -> Path:
    """The munge key and socket of the cluster at ``root``, in a directory of their own
    under the temporary directory: the ``munge`` user must reach it, and ``root`` may lie
    in a tree only its owner can enter (pytest's ``/tmp/pytest-of-<user>`` is mode 700)."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"normstudy-munge-{digest}"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("root", help="directory for the cluster's config, state and logs")
    args = parser.parse_args(argv)
    cluster = Cluster(args.root)
    if args.action == "down":
        cluster.stop()
        return 0
    try:
        cluster.start()
    except ClusterUnavailable as error:
        cluster.stop()
        print(f"cannot start SLURM: {error}", file=sys.stderr)
        return 1
    print(f"export SLURM_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
