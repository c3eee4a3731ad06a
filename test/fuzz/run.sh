#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) and either replays
# their corpora once (make test) or fuzzes each for a bounded time (make fuzz).
#
#   test/fuzz/run.sh replay [NAME...]
#   test/fuzz/run.sh fuzz SECONDS [NAME...]   (NAME: only these harnesses)
#
# New inputs that add coverage are merged into test/fuzz/corpus/<name>; an
# input that crashes is kept in test/fuzz/crashes/<name>/ and replayed by
# every later run (as a regression input) once the bug is fixed.
#
# PostgreSQL's JSON lexer (libpgcommon, frontend build) leaks a field name on
# some error paths; in the backend that memory belongs to a memory context, so
# leak detection is off here and on for the server's harnesses.
set -uo pipefail
cd "$(dirname "$0")"
mode=${1:-replay}
seconds=60
shift $(( $# > 0 ))
if [ "$mode" = fuzz ]; then seconds=${1:-60}; shift $(( $# > 0 )); fi
build=build
mkdir -p "$build"
inc="-I$(pg_config --includedir-server) -I$(pg_config --includedir)"
libs="-L$(pg_config --pkglibdir) -lpgcommon -lpgport -lsodium -lcrypto -L$(pg_config --libdir) -lpq"
cflags="-g -O1 -Wall -Wno-ignored-attributes -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"

declare -A sources=(
  [jwt]="../../src/jwt.c jwt_fuzz.c"
  [jwks]="../../src/jwk.c ../../src/jwt.c jwks_fuzz.c"
  [route]="route_fuzz.c ../../src/server/routes.c"
  [body]="body_fuzz.c"
  [args]="args_fuzz.c"
)
declare -A asan=(
  [jwt]="detect_leaks=0"
  [jwks]="detect_leaks=0"
  [route]="detect_leaks=1"
  [body]="detect_leaks=1"
  [args]="detect_leaks=1"
)

# body_fuzz and args_fuzz send their inputs to a real database: use the
# cluster of the caller (make test exports PGHOST...) or start one.
cluster=
if [ -z "${PGHOST:-}" ]; then
  cluster=$(mktemp -d /tmp/sdr_creds_fuzz.XXXXXX); chmod 755 "$cluster"
  eval "$(../cluster.sh start "$cluster/pg" 54359)"
  trap '../cluster.sh stop "$cluster/pg"; rm -rf "$cluster"' EXIT
fi
export SDR_FUZZ_DB=sdr_fuzz
dropdb --if-exists sdr_fuzz >/dev/null 2>&1
createdb sdr_fuzz && psql -X -q -d sdr_fuzz -c "CREATE EXTENSION sdr_creds CASCADE" >/dev/null 2>&1

failed=0
names=("$@"); [ $# -gt 0 ] || names=("${!sources[@]}")
for name in "${names[@]}"; do
  [ -n "${sources[$name]:-}" ] || { echo "not ok - fuzz: no harness named $name"; failed=1; continue; }
  bin="$build/${name}_fuzz"
  # shellcheck disable=SC2086
  if ! clang $cflags -DFRONTEND $inc ${sources[$name]} $libs -o "$bin" 2>"$build/$name.build.log"; then
    echo "not ok - fuzz: $name harness builds"; sed 's/^/# /' "$build/$name.build.log" | head -20; failed=1; continue
  fi
  mkdir -p "corpus/$name" "crashes/$name"
  export ASAN_OPTIONS="${asan[$name]}:allocator_may_return_null=1"
  if [ "$mode" = fuzz ]; then
    work=$(mktemp -d)
    cp "corpus/$name"/* "$work"/ 2>/dev/null
    "$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="crashes/$name/" -print_final_stats=1 "$work" >"$build/$name.log" 2>&1
    rc=$?
    "$bin" -merge=1 "corpus/$name" "$work" >/dev/null 2>&1
    rm -rf "$work"
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/$name.log" | grep -o '[0-9]*$')
    if [ $rc -eq 0 ]; then
      echo "ok - fuzz: $name, ${seconds}s, ${runs:-0} executions, no crash"
    else
      echo "not ok - fuzz: $name crashed; input kept in test/fuzz/crashes/$name/"; failed=1
      grep -E 'ERROR|SUMMARY|^[a-z]+_fuzz: ' "$build/$name.log" | head -5 | sed 's/^/# /'
    fi
  else
    inputs=$(find "corpus/$name" "crashes/$name" -type f | wc -l)
    if find "corpus/$name" "crashes/$name" -type f -print0 | xargs -0 -r "$bin" -runs=1 >"$build/$name.log" 2>&1; then
      echo "ok - fuzz: $name replays its $inputs corpus and regression inputs"
    else
      echo "not ok - fuzz: $name replay"; grep -E 'ERROR|SUMMARY|^[a-z]+_fuzz: ' "$build/$name.log" | head -5 | sed 's/^/# /'; failed=1
    fi
  fi
done
dropdb --if-exists sdr_fuzz >/dev/null 2>&1
# args_fuzz's roles (roles belong to the cluster, not to the database)
psql -X -q -c "DROP ROLE IF EXISTS sdr_fuzz_app, sdr_fuzz_readme" >/dev/null 2>&1
exit $failed
