#!/usr/bin/env bash
# The systemd units (contrib/systemd/): installed into a staging root, checked
# with systemd-analyze verify, and their ExecStart lines run as their user
# against the test cluster (no systemd as PID 1 is needed). Called by
# test/run.sh with PGHOST, PGPORT, SDR_CLUSTER_DIR, SDR_SERVER and
# SDR_REFRESHER exported. Prints one "ok - ..." / "not ok - ..." line per
# test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for v in PGHOST PGPORT SDR_CLUSTER_DIR SDR_SERVER SDR_REFRESHER; do
  if [ -z "${!v:-}" ]; then echo "not ok - services: $v is not set"; exit 1; fi
done
if ! command -v systemd-analyze >/dev/null; then
  echo "not ok - services: systemd-analyze is missing (the systemd package: make deps)"; exit 1
fi
work=$(mktemp -d /tmp/sdr_services.XXXXXX)
chmod 755 "$work"   # the units' user runs the installed binaries from here
trap 'rm -rf "$work"' EXIT
export SDR_REFRESH_WORK="$work"
timeout --kill-after=10 300 /usr/bin/python3 -B "$here/test_services.py"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "not ok - services: suite timed out"; fi
exit $rc
