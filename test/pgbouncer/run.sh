#!/usr/bin/env bash
# PgBouncer tests: a real pgbouncer (Debian package) started on loopback by
# test_pgbouncer.py, between the test cluster and SQL clients, the HTTP
# server and the refresher. Called by test/run.sh with PGHOST, PGPORT,
# SDR_CLUSTER_DIR, SDR_SERVER and SDR_REFRESHER exported. Prints one
# "ok - ..." / "not ok - ..." line per test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for v in PGHOST PGPORT SDR_CLUSTER_DIR SDR_SERVER SDR_REFRESHER; do
  if [ -z "${!v:-}" ]; then echo "not ok - pgbouncer: $v is not set"; exit 1; fi
done
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "not ok - pgbouncer: the pgbouncer package is missing (make deps)"; exit 1
fi
work=$(mktemp -d /tmp/sdr_pgbouncer.XXXXXX)
chmod 755 "$work"   # pgbouncer runs as postgres when the tests run as root
trap 'rm -rf "$work"' EXIT
export SDR_REFRESH_WORK="$work"
timeout --kill-after=10 300 /usr/bin/python3 -B "$here/test_pgbouncer.py"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "not ok - pgbouncer: suite timed out"; fi
exit $rc
