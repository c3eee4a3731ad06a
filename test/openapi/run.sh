#!/usr/bin/env bash
# OpenAPI tests of sdr_creds_server's GET /openapi.json over a real socket
# (test_openapi.py). Called by test/run.sh after the HTTP and refresher tests,
# with PGHOST, PGPORT, SDR_CLUSTER_DIR, SDR_SERVER and SDR_HTTP_RECORD (the
# answers those tests recorded) exported. Installs its npm packages first
# (deps.sh: only when missing). Prints one "ok - ..." / "not ok - ..." line
# per test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for v in PGHOST PGPORT SDR_CLUSTER_DIR SDR_SERVER; do
  if [ -z "${!v:-}" ]; then echo "not ok - openapi: $v is not set"; exit 1; fi
done
if ! /usr/bin/python3 -c "import jsonschema" 2>/dev/null; then
  echo "not ok - openapi: python3-jsonschema is missing (make deps)"; exit 1
fi
work=$(mktemp -d /tmp/sdr_openapi.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! "$here/deps.sh" 2>"$work/deps.log"; then
  echo "not ok - openapi: installing the npm packages (test/openapi/deps.sh)"
  tail -20 "$work/deps.log" | sed 's/^/# /'; exit 1
fi
export SDR_OPENAPI_WORK="$work"
timeout --kill-after=10 300 /usr/bin/python3 -B "$here/test_openapi.py"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "not ok - openapi: suite timed out"; fi
exit $rc
