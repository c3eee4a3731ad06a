#!/usr/bin/env bash
# The systemd units (contrib/systemd/): installed into a staging root, checked
# with systemd-analyze verify, and their ExecStart lines run as their user
# against the test cluster (no systemd as PID 1 is needed). Called by
# test/run.sh with PGHOST, PGPORT, SDR_CLUSTER_DIR, SDR_SERVER and
# SDR_REFRESHER exported. Prints one "ok - ..." / "not ok - ..." line per
# test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v systemd-analyze >/dev/null; then
  echo "not ok - services: systemd-analyze is missing (the systemd package: make deps)"; exit 1
fi
# the units' user runs the installed binaries from the work directory (755)
exec "$here/../suite.sh" services "$here/test_services.py" 300 PGHOST PGPORT SDR_CLUSTER_DIR SDR_SERVER SDR_REFRESHER
