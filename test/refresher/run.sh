#!/usr/bin/env bash
# The token refresher against a real local OAuth endpoint (mock_oauth.py) and
# the test cluster. Called by test/run.sh with PGHOST, PGPORT, SDR_CLUSTER_DIR
# and SDR_REFRESHER exported. Prints one "ok - ..." / "not ok - ..." line per
# test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for v in PGHOST PGPORT SDR_CLUSTER_DIR SDR_REFRESHER; do
  if [ -z "${!v:-}" ]; then echo "not ok - refresher: $v is not set"; exit 1; fi
done
if [ ! -x "$SDR_REFRESHER" ]; then echo "not ok - refresher: $SDR_REFRESHER not built"; exit 1; fi
work=$(mktemp -d /tmp/sdr_refresh.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SDR_REFRESH_WORK="$work"
timeout --kill-after=10 600 /usr/bin/python3 -B "$here/test_refresher.py"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "not ok - refresher: suite timed out"; fi
exit $rc
