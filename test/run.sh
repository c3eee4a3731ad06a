#!/usr/bin/env bash
# One pass of the tests against a throwaway cluster, with the extension and
# server as installed/built now. Each suite prints "ok - name" / "not ok -
# name"; the lines are appended to $SDR_RESULTS (test/all.sh counts them).
#
#   test/run.sh [plain|sanitizers]
# In the sanitizers pass (make SANITIZE=1: UBSan in the extension, ASan and
# UBSan in the HTTP server and the refresher) any sanitizer report fails the pass.
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
# The port can be taken between the check above and the start: try the next ones.
for _ in 1 2 3 4 5; do
  env=$(test/cluster.sh start "$work/cluster" "$port" 2>"$work/cluster.err") && break
  env=; test/cluster.sh stop "$work/cluster"; rm -rf "$work/cluster"; port=$((port + 1))
done
[ -n "$env" ] || { echo "not ok - could not start the test cluster" | tee -a "$results"; sed 's/^/# /' "$work/cluster.err"; exit 1; }
eval "$env"
export SDR_CLUSTER_DIR="$work/cluster" SDR_SERVER="$top/src/server/sdr_creds_server"
export SDR_REFRESHER="$top/src/refresher/sdr_creds_refresher"

record() { sed -u -E "s/^(ok|not ok) - /\1 - $tag/" | tee -a "$results"; }

# 0. Layers: no file of src/, src/server/ or src/refresher/ calls, directly or
# through others, a file that calls it back (test/layers/check.py, one result
# per directory). It reads the sources, not the build: the plain pass only.
if [ "$mode" = plain ]; then
  echo "# layers (test/layers/check.py)"
  python3 test/layers/check.py 2>&1 | record
fi

# 1. Regression tests (pg_regress): one result per sql/<test>.sql; then the
# isolation specs (pg_isolation_regress): one result per specs/<spec>.spec.
# Run apart, so the specs run also when a regression test failed; a test that
# crashed the server leaves it in crash recovery, so it is restarted first
# (pg_ctl -w waits until it accepts connections).
echo "# regression tests (pg_regress) and isolation specs (pg_isolation_regress)"
make --no-print-directory installcheck ISOLATION= > "$work/regress.out" 2>&1
pg_isready -q || test/cluster.sh restart "$work/cluster"
make --no-print-directory installcheck REGRESS= > "$work/isolation.out" 2>&1
for suite in regress:pg_regress isolation:pg_isolation_regress; do
  name=${suite%:*}
  sed -nE "s/^(test| ) *([a-z_]+) +\.\.\. ok.*/ok - $name: \2/p; s/^(test| ) *([a-z_]+) +\.\.\. FAILED.*/not ok - $name: \2/p" \
    "$work/$name.out" > "$work/$name.results"
  if [ -s "$work/$name.results" ]; then
    record < "$work/$name.results"
  else
    echo "not ok - $name: ${suite#*:} did not run" | record
    sed 's/^/# /' "$work/$name.out"
  fi
done
[ -f regression.diffs ] && head -300 regression.diffs | sed 's/^/# /'
[ -f output_iso/regression.diffs ] && head -300 output_iso/regression.diffs | sed 's/^/# /'

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

# 4-7. The suites of test/NAME/run.sh, each against the same cluster.
suite() { [ -x "test/$1/run.sh" ] || return 0; echo "# $2"; "test/$1/run.sh" 2>&1 | record; }
# They (the HTTP and refresher suites) record every answer they get, for the
# OpenAPI suite to check against /openapi.json.
export SDR_HTTP_RECORD="$work/http_answers.jsonl"
suite http "HTTP tests (the server over a real socket)"
suite refresher "refresher tests (against a local OAuth token endpoint)"
suite pgbouncer "PgBouncer tests (a real pgbouncer on loopback between the cluster and SQL clients, the server, the refresher)"
suite services "systemd units (installed into a staging root, verified, their ExecStart lines run as their user)"
suite postgrest "PostgREST replay (PostgREST v12's own statements for /rpc/ calls, as prepared statements on one pooled connection)"
suite failover "failover tests (a primary SIGKILLed under load, its synchronous standby promoted, the old primary rewound)"
suite openapi "OpenAPI tests (a validator, a generated client, every answer above)"

# 8. The docs: README length, links and anchors, every flag of the server and
# the refresher documented (once: they do not depend on the build's flags).
if [ "$mode" = plain ]; then
  echo "# docs checks"
  python3 test/docs/check.py 2>&1 | record
fi

if [ "$mode" = sanitizers ]; then
  test/cluster.sh stop "$work/cluster"
  if ls "$work"/sanitizer/* >/dev/null 2>&1; then
    echo "not ok - sanitizers: reports from PostgreSQL, the server or the refresher" | record
    head -c 4000 "$work"/sanitizer/* | sed 's/^/# /'
  else
    echo "ok - sanitizers: no UBSan report from the extension, no ASan or UBSan report from the server or the refresher" | record
  fi
fi
