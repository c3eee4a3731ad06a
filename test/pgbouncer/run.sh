#!/usr/bin/env bash
# PgBouncer tests: a real pgbouncer (Debian package) started on loopback by
# test_pgbouncer.py, between the test cluster and SQL clients, the HTTP
# server and the refresher. Called by test/run.sh with PGHOST, PGPORT,
# SDR_CLUSTER_DIR, SDR_SERVER and SDR_REFRESHER exported. Prints one
# "ok - ..." / "not ok - ..." line per test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "not ok - pgbouncer: the pgbouncer package is missing (make deps)"; exit 1
fi
# pgbouncer runs as postgres when the tests run as root: the work directory is 755
exec "$here/../suite.sh" pgbouncer "$here/test_pgbouncer.py" 300 PGHOST PGPORT SDR_CLUSTER_DIR SDR_SERVER SDR_REFRESHER
