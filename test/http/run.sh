#!/usr/bin/env bash
# HTTP tests of sdr_creds_server over a real socket. Called by test/run.sh with
# PGHOST, PGPORT, PGUSER, PGDATABASE, SDR_CLUSTER_DIR and SDR_SERVER exported
# (a throwaway cluster with the extension installable and its keyring set).
# Prints one "ok - ..." / "not ok - ..." line per test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

for v in PGHOST PGPORT SDR_CLUSTER_DIR SDR_SERVER; do
  if [ -z "${!v:-}" ]; then echo "not ok - http: $v is not set"; exit 1; fi
done
if [ ! -x "$SDR_SERVER" ]; then echo "not ok - http: server binary $SDR_SERVER not built"; exit 1; fi
for m in requests:python3-requests prometheus_client:python3-prometheus-client; do
  if ! /usr/bin/python3 -c "import ${m%%:*}" 2>/dev/null; then
    echo "not ok - http: ${m#*:} is missing (make deps)"; exit 1
  fi
done

work=$(mktemp -d /tmp/sdr_http.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SDR_HTTP_WORK="$work"
# the whole suite (test_http.py, then test_attacks.py) is bounded in time
cap=600
start=$SECONDS
timeout --kill-after=10 $cap /usr/bin/python3 -B "$here/test_http.py"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "not ok - http: suite timed out"; exit $rc; fi
left=$((cap - (SECONDS - start)))
if [ $left -lt 60 ]; then echo "not ok - http attacks: no time left in the suite's cap"; exit 1; fi
timeout --kill-after=10 $left /usr/bin/python3 -B "$here/test_attacks.py"
rc2=$?
if [ $rc2 -eq 124 ] || [ $rc2 -eq 137 ]; then echo "not ok - http attacks: suite timed out"; fi
[ $rc -ne 0 ] && exit $rc
exit $rc2
