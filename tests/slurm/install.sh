#!/usr/bin/env bash
# Install the Debian packages of the test SLURM cluster (tests/slurm/cluster.py); as root.
# No daemon is started here and nothing is configured: the tests start their own cluster.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
  && command -v sbatch >/dev/null && command -v munged >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge
