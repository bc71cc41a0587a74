"""Wall time, CPU time and peak memory (max RSS) of one command.

The command runs under a small Python parent that reports its ``wait4`` usage. Measured
from the benchmark process itself, the max RSS would include the benchmark's own memory:
Linux charges the memory of the process that forked the child to the child's peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPORTER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({
        "seconds": time.perf_counter() - start,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "exit_code": os.waitstatus_to_exitcode(status),
    }, out)
"""


@dataclass
class Usage:
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    output: str


def measured_run(command: list[str], cwd: Path | None = None, env: dict | None = None) -> Usage:
    """Run ``command``; its usage and output (stdout + stderr). Raises if it fails."""
    with tempfile.TemporaryDirectory(prefix="process_usage-") as tmp:
        report = Path(tmp) / "usage.json"
        result = subprocess.run(
            [sys.executable, "-c", REPORTER, str(report), *command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        usage = json.loads(report.read_text()) if report.exists() else None
    if result.returncode != 0 or usage is None or usage["exit_code"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}")
    return Usage(usage["seconds"], usage["cpu_seconds"], usage["max_rss_mb"], result.stdout)
