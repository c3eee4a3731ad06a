#!/usr/bin/env bash
# Runs every test against a throwaway cluster and ends with "N passed, N failed".
# Each suite prints "ok - name" / "not ok - name" lines; this script counts them.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
work=$(mktemp -d /tmp/sdr_creds_test.XXXXXX)
chmod 755 "$work"

port=${SDR_TEST_PORT:-54329}
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

cleanup() { test/cluster.sh stop "$work/cluster"; rm -rf "$work"; }
trap cleanup EXIT
eval "$(test/cluster.sh start "$work/cluster" "$port")" || { echo "could not start the test cluster"; echo "0 passed, 1 failed"; exit 1; }
export SDR_CLUSTER_DIR="$work/cluster" SDR_SERVER="$top/src/server/sdr_creds_server"

results="$work/results"
: > "$results"

# 1. Regression tests (pg_regress): one result per sql/<test>.sql.
echo "# regression tests (pg_regress)"
make --no-print-directory installcheck > "$work/regress.out" 2>&1
sed -nE 's/^(test| ) *([a-z_]+) +\.\.\. ok.*/ok - regress: \2/p; s/^(test| ) *([a-z_]+) +\.\.\. FAILED.*/not ok - regress: \2/p' \
  "$work/regress.out" | tee -a "$results"
if ! grep -q '^ok\|^not ok' "$results"; then
  echo "not ok - regress: pg_regress did not run" | tee -a "$results"
  sed 's/^/# /' "$work/regress.out"
fi
[ -f regression.diffs ] && head -300 regression.diffs | sed 's/^/# /'

# 2. Security tests (leaks, faults, attacks) against the same cluster.
for t in test/security/*.sh; do
  [ "$(basename "$t")" = lib.sh ] && continue
  echo "# $t"
  "$t" 2>&1 | tee -a "$results"
done

# 3. Fuzz harnesses replay their corpora and kept crash inputs.
echo "# fuzz corpora"
test/fuzz/run.sh replay 2>&1 | tee -a "$results"

# 4. HTTP server tests over a real socket.
if [ -x test/http/run.sh ]; then
  echo "# HTTP tests"
  test/http/run.sh 2>&1 | tee -a "$results"
fi

passed=$(grep -c '^ok ' "$results")
failed=$(grep -c '^not ok ' "$results")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
