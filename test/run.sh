#!/usr/bin/env bash
# One pass of the tests against a throwaway cluster, with the extension and
# server as installed/built now. Each suite prints "ok - name" / "not ok -
# name"; the lines are appended to $SDR_RESULTS (test/all.sh counts them).
#
#   test/run.sh [plain|sanitizers]
# In the sanitizers pass (make SANITIZE=1: UBSan in the extension, ASan and
# UBSan in the HTTP server) any sanitizer report fails the pass.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
mode=${1:-plain}
work=$(mktemp -d /tmp/sdr_creds_test.XXXXXX)
chmod 755 "$work"
results=${SDR_RESULTS:-$work/results}
tag=""
if [ "$mode" = sanitizers ]; then
  tag="[sanitizers] "
  mkdir -p "$work/sanitizer"; chmod 777 "$work/sanitizer"
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$work/sanitizer/asan"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$work/sanitizer/ubsan"
  export SDR_PG_ENV="UBSAN_OPTIONS=$UBSAN_OPTIONS"
fi

port=${SDR_TEST_PORT:-54329}
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

cleanup() { test/cluster.sh stop "$work/cluster"; rm -rf "$work"; }
trap cleanup EXIT
eval "$(test/cluster.sh start "$work/cluster" "$port")" || { echo "could not start the test cluster"; echo "0 passed, 1 failed"; exit 1; }
export SDR_CLUSTER_DIR="$work/cluster" SDR_SERVER="$top/src/server/sdr_creds_server"

record() { sed -u -E "s/^(ok|not ok) - /\1 - $tag/" | tee -a "$results"; }

# 1. Regression tests (pg_regress): one result per sql/<test>.sql.
echo "# regression tests (pg_regress)"
make --no-print-directory installcheck > "$work/regress.out" 2>&1
sed -nE 's/^(test| ) *([a-z_]+) +\.\.\. ok.*/ok - regress: \2/p; s/^(test| ) *([a-z_]+) +\.\.\. FAILED.*/not ok - regress: \2/p' \
  "$work/regress.out" > "$work/regress.results"
if [ -s "$work/regress.results" ]; then
  record < "$work/regress.results"
else
  echo "not ok - regress: pg_regress did not run" | record
  sed 's/^/# /' "$work/regress.out"
fi
[ -f regression.diffs ] && head -300 regression.diffs | sed 's/^/# /'

# 2. Security tests (leaks, faults, attacks) against the same cluster.
for t in test/security/*.sh; do
  [ "$(basename "$t")" = lib.sh ] && continue
  echo "# $t"
  "$t" 2>&1 | record
done

# 3. Fuzz harnesses replay their corpora and kept crash inputs.
if [ "$mode" = plain ]; then
  echo "# fuzz corpora (the harnesses are built with ASan and UBSan)"
  test/fuzz/run.sh replay 2>&1 | record
fi

# 4. HTTP server tests over a real socket.
if [ -x test/http/run.sh ]; then
  echo "# HTTP tests"
  test/http/run.sh 2>&1 | record
fi

if [ "$mode" = sanitizers ]; then
  test/cluster.sh stop "$work/cluster"
  if ls "$work"/sanitizer/* >/dev/null 2>&1; then
    echo "not ok - sanitizers: reports from PostgreSQL or the server" | record
    head -c 4000 "$work"/sanitizer/* | sed 's/^/# /'
  else
    echo "ok - sanitizers: no UBSan report from the extension, no ASan or UBSan report from the server" | record
  fi
fi
