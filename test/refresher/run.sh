#!/usr/bin/env bash
# The token refresher against a real local OAuth endpoint (mock_oauth.py) and
# the test cluster. Called by test/run.sh with PGHOST, PGPORT, SDR_CLUSTER_DIR
# and SDR_REFRESHER exported. Prints one "ok - ..." / "not ok - ..." line per
# test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "${SDR_REFRESHER:-}" ]; then echo "not ok - refresher: ${SDR_REFRESHER:-SDR_REFRESHER} not built"; exit 1; fi
exec "$here/../suite.sh" refresher "$here/test_refresher.py" 600 PGHOST PGPORT SDR_CLUSTER_DIR SDR_REFRESHER
