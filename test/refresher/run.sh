#!/usr/bin/env bash
# The token refresher against a real local OAuth endpoint (mock_oauth.py) and
# the test cluster; its address fence on literal addresses (fence_test.c, no
# connection made); its outbound fence and --jwks against a local HTTPS
# server with a throwaway CA (test_outbound.py). Called by test/run.sh with
# PGHOST, PGPORT, SDR_CLUSTER_DIR and SDR_REFRESHER exported. Prints one
# "ok - ..." / "not ok - ..." line per test; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "${SDR_REFRESHER:-}" ]; then echo "not ok - refresher: ${SDR_REFRESHER:-SDR_REFRESHER} not built"; exit 1; fi
work=$(mktemp -d /tmp/sdr_fence.XXXXXX)
trap 'rm -rf "$work"' EXIT
rc=0
if cc -std=gnu11 -Wall -Wextra -Werror -I"$here/../../src/refresher" -o "$work/fence_test" \
     "$here/fence_test.c" "$here/../../src/refresher/fence.c" 2>"$work/cc.err"; then
  "$work/fence_test" || rc=1
else
  echo "not ok - fence: test/refresher/fence_test.c does not build"; sed 's/^/# /' "$work/cc.err"; rc=1
fi
for t in test_refresher.py test_outbound.py; do
  "$here/../suite.sh" refresher "$here/$t" 600 PGHOST PGPORT SDR_CLUSTER_DIR SDR_REFRESHER || rc=1
done
exit $rc
