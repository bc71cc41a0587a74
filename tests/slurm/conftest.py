"""The real SLURM cluster of the ``slurm`` tests (see ``cluster.py``).

Where SLURM cannot run (not installed, not root) the tests are skipped with the reason;
with ``NORMSTUDY_REQUIRE_SLURM=1`` (set by ``.ci/run``) that is a failure instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import MARKER, SYSTEM_CONF, Cluster, ClusterUnavailable, unavailable_reason  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: needs a real SLURM cluster (tests/slurm)")


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.slurm)


def no_slurm(reason: str):
    if os.environ.get("NORMSTUDY_REQUIRE_SLURM") == "1":
        pytest.fail(f"NORMSTUDY_REQUIRE_SLURM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def running_developer_cluster() -> Cluster | None:
    """A cluster started with ``python tests/slurm/cluster.py up DIR`` and still answering."""
    if not SYSTEM_CONF.exists() or MARKER not in SYSTEM_CONF.read_text():
        return None
    for line in SYSTEM_CONF.read_text().splitlines():
        if line.startswith("StateSaveLocation="):
            cluster = Cluster(Path(line.split("=", 1)[1]).parent)
            result = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False)
            if result.returncode == 0 and result.stdout.strip():
                return cluster
    return None


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running single-node cluster: the developer's, or one started for this session."""
    reason = unavailable_reason()
    if reason:
        no_slurm(reason)
    existing = running_developer_cluster()
    if existing is not None:
        yield existing
        return
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except ClusterUnavailable as error:
        cluster.stop()
        no_slurm(f"the test SLURM cluster did not start: {error}")
    try:
        yield cluster
    finally:
        cluster.stop()
