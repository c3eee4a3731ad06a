#!/usr/bin/env bash
# Leaks: secrets stored or presented with a unique marker never reach the
# heap, the WAL, the server log (log_statement=all, durations, errors with
# their statements and parameters), pg_stat_activity (sessions left idle
# after the statement) or pg_stat_statements.
#
# Part 1: statements that name sdr_creds (tokens, which are not key-shaped).
# Part 2: API-key-shaped and JWT-shaped strings by paths that do not name
# sdr_creds, or hide it (search_path, request.headers, PREPARE/EXECUTE, DO,
# a wrapper function, EXPLAIN, CALL, the extended protocol), with
# pg_stat_statements loaded after and then before sdr_creds in
# shared_preload_libraries (its utility statements keep their raw text).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_leaks
org=00000000-0000-4000-8000-0000000000c1
marker="LEAKMARK$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
withheld="<withheld by sdr_creds>"
hold="$SDR_CLUSTER_DIR/leak_hold"

# Waits (up to 60 s) until the command succeeds. Idle sessions wait for at
# most 120 s to be released.
wait_for() { local i; for i in $(seq 600); do "$@" && return 0; sleep 0.1; done; return 1; }
setting_is() { [ "$(q -c "SHOW $1")" = "$2" ]; }

q -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_min_duration_statement = 0" \
  -c "ALTER SYSTEM SET log_min_error_statement = 'info'" -c "ALTER SYSTEM SET log_parameter_max_length_on_error = -1" \
  -c "ALTER SYSTEM SET log_error_verbosity = 'verbose'" -c "SELECT pg_reload_conf()" >/dev/null
wait_for setting_is log_min_error_statement info || echo "# the logging settings did not take effect"
fresh_db "$db"
q -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org') ->> 'key'")
q -d "$db" >/dev/null <<'SQL'
CREATE SCHEMA app_leak;
CREATE FUNCTION app_leak.login(k text) RETURNS uuid LANGUAGE plpgsql
  AS $$BEGIN RETURN sdr_creds.authenticate(k); END$$;
CREATE PROCEDURE app_leak.login_proc(k text) LANGUAGE plpgsql
  AS $$BEGIN PERFORM sdr_creds.authenticate(k); END$$;
SQL

# Idle sessions: each runs its statements, then stays idle (its last statement
# still in pg_stat_activity) until released. hold_start; idle NAME <<SQL ...;
# hold_snapshot N (waits for N sessions to be idle, then reads pg_stat_activity
# into $activity and $idle_count, and releases them).
hold_start() { rm -rf "$hold"; mkdir -p "$hold"; chmod 777 "$hold"; holders=(); }
hold_line() { printf 'i=0; touch %s/ready.%s; while [ ! -e %s/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done' \
  "$hold" "$1" "$hold"; }
idle() {
  local sql; sql=$(cat)
  { printf '%s\n' "$sql"; printf '\\! %s\n' "$(hold_line "$1")"; } |
    PGAPPNAME="leak_$1" psql -X -q -d "$db" >/dev/null 2>&1 &
  holders+=($!)
}
ready_count() { ls "$hold" | grep -c '^ready\.'; }
ready_at_least() { [ "$(ready_count)" -ge "$1" ]; }
hold_snapshot() {
  wait_for ready_at_least "$1" || echo "# only $(ready_count) of $1 sessions got ready"
  activity=$(q -d "$db" -c "SELECT string_agg(query, ' | ') FROM pg_stat_activity WHERE application_name LIKE 'leak\_%'")
  idle_count=$(q -d "$db" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'leak\_%' AND state = 'idle'")
  touch "$hold/go"
  wait "${holders[@]}"
}

# ---- Part 1: statements naming sdr_creds --------------------------------------
# Literals in SQL text: store, a failing store, a bogus key.
hold_start
idle store <<SQL
BEGIN;
SELECT sdr_creds.authenticate('$key');
SELECT sdr_creds.store('salesforce', 'https://x.example', '$marker-access', '{"refresh_token": "$marker-refresh", "instance_url": "https://x.example"}');
COMMIT;
SELECT sdr_creds.authenticate('sk_live_$marker-bogus');
SELECT sdr_creds.store('hubspot', NULL, '$marker-bad', '{"refresh_token": $marker-not-json}');
BEGIN;
SELECT sdr_creds.authenticate('$key');
SELECT sdr_creds.store('hubspot', NULL, '$marker-hub', '{"client_secret": "$marker-cs"}');
COMMIT;
SQL
idle store_last <<SQL
SELECT sdr_creds.store('zoho', NULL, '$marker-zoho', '{}') FROM sdr_creds.authenticate('$key');
SQL
hold_snapshot 2
check "leaks: sessions left idle after a store (2)" [ "$idle_count" = 2 ]
check "leaks: marker absent from pg_stat_activity" test -n "$activity" -a "${activity/$marker/}" = "$activity"

# Bind parameters (extended protocol), with pgbench as the client.
cat > "$SDR_CLUSTER_DIR/leak.pgbench" <<PGB
\set unused 0
BEGIN;
SELECT sdr_creds.authenticate(:key);
SELECT sdr_creds.store('pipedrive', NULL, :tok, '{}');
END;
SELECT sdr_creds.authenticate(:bogus);
PGB
pgbench -n -M extended -t 1 -D key="$key" -D tok="$marker-param" -D bogus="sk_live_$marker-pbogus" \
  -f "$SDR_CLUSTER_DIR/leak.pgbench" "$db" >"$SDR_CLUSTER_DIR/leak.pgbench.out" 2>&1

q -d "$db" -c "CHECKPOINT" >/dev/null
statements=$(q -d "$db" -c "SELECT string_agg(query, ' | ') FROM pg_stat_statements")
stored=$(q -d "$db" -c "SELECT count(*) FROM sdr_creds.credentials")

check "leaks: the credentials were stored (4 rows)" [ "$stored" = 4 ]
check "leaks: marker absent from heap, indexes and WAL" not data_has "$marker"
check "leaks: marker absent from the server log (log_statement=all, errors, parameters)" not log_has "$marker"
check "leaks: the log did record the statements, withheld" log_has "$withheld"
check "leaks: marker absent from pg_stat_statements" test -n "$statements" -a "${statements/$marker/}" = "$statements"

# ---- Part 2: key- and JWT-shaped strings, by content ---------------------------
# Each path's made-up secret carries "$m<path>"; real keys are used too.
paths="srch syn hdr jwt bind bjwt prep do wrap expl call ext"
scenario() {
  local round=$1 m="${marker}R$1" p
  local jwt="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ${m}jwt.c2lnbmF0dXJl"
  local bjwt="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ${m}bjwt."
  q -d "$db" -c "SELECT pg_stat_statements_reset()" >/dev/null

  hold_start
  # search_path, then unqualified calls: a made-up key, the real key.
  idle srch <<SQL
SET search_path = sdr_creds, pg_catalog;
SELECT authenticate('sk_live_${m}srch');
SELECT authenticate('$key');
SQL
  # A statement that fails to parse stays in pg_stat_activity as sent.
  idle syn <<SQL
SELECT pg_catalog.length('sk_test_${m}syn' 1);
SQL
  # PostgREST's request.headers, set by a simple query: an API key, a JWT.
  idle hdr <<SQL
SELECT set_config('request.headers', '{"x-api-key": "sk_live_${m}hdr"}', false);
SQL
  idle jwt <<SQL
SELECT set_config('request.headers', '{"authorization": "Bearer $jwt"}', false);
SQL
  # PREPARE with a parameter, EXECUTE with a literal key.
  idle prep <<SQL
PREPARE p(text) AS SELECT sdr_creds.authenticate(\$1);
EXECUTE p('sk_live_${m}prep');
EXECUTE p('$key');
SQL
  # A DO block, unqualified.
  idle do <<SQL
SET search_path = sdr_creds, pg_catalog;
DO \$\$BEGIN PERFORM authenticate('sk_live_${m}do'); END\$\$;
DO \$\$BEGIN PERFORM authenticate('$key'); END\$\$;
SQL
  # A wrapper function in another schema.
  idle wrap <<SQL
SELECT app_leak.login('sk_live_${m}wrap');
SELECT app_leak.login('$key');
SQL
  idle expl <<SQL
SET search_path = sdr_creds, pg_catalog;
EXPLAIN SELECT authenticate('sk_live_${m}expl');
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT authenticate('$key');
SQL
  idle call <<SQL
CALL app_leak.login_proc('sk_live_${m}call');
CALL app_leak.login_proc('$key');
SQL
  # The extended protocol with a literal, left idle by pgbench's \shell.
  printf '%s\n' "$(hold_line ext)" > "$hold/ext.sh"
  cat > "$hold/ext.pgbench" <<PGB
SELECT set_config('request.headers', '{"x-api-key": "sk_live_${m}ext"}', false);
\shell sh $hold/ext.sh
PGB
  PGAPPNAME=leak_ext pgbench -n -M extended -t 1 -f "$hold/ext.pgbench" "$db" >"$hold/ext.out" 2>&1 &
  holders+=($!)
  hold_snapshot 10

  # Bind parameters over the extended protocol, as PostgREST sends them, by a
  # statement that does not name sdr_creds: the real key (authenticates), a
  # made-up key and a JWT (both refused: the error logs the parameters).
  cat > "$hold/bind.pgbench" <<'PGB'
SET search_path = sdr_creds, pg_catalog;
BEGIN;
SELECT set_config('request.headers', :hdr, true), authenticate_request();
END;
PGB
  pgbench -n -M extended -t 1 -D hdr="{\"x-api-key\": \"$key\"}" -f "$hold/bind.pgbench" "$db" >"$hold/bind0.out" 2>&1
  local bound_ok=$?
  pgbench -n -M extended -t 1 -D hdr="{\"x-api-key\": \"sk_live_${m}bind\"}" -f "$hold/bind.pgbench" "$db" >"$hold/bind1.out" 2>&1
  pgbench -n -M extended -t 1 -D hdr="{\"authorization\": \"Bearer $bjwt\"}" -f "$hold/bind.pgbench" "$db" >"$hold/bind2.out" 2>&1

  statements=$(q -d "$db" -c "SELECT string_agg(query, ' | ') FROM pg_stat_statements")
  local utility
  utility=$(q -d "$db" -c "SELECT count(*) FROM pg_stat_statements WHERE query ~ '^(DO|EXPLAIN|CALL).*sk_live_x{20}'")

  check "leaks[$round]: the sessions were idle (10), their statements in pg_stat_activity" [ "$idle_count" = 10 ]
  check "leaks[$round]: the real key authenticated from bound request.headers" [ "$bound_ok" = 0 ]
  check "leaks[$round]: pg_stat_statements kept the utility statements, masked (DO, EXPLAIN, CALL)" [ "$utility" -ge 3 ]
  check "leaks[$round]: pg_stat_activity shows withheld statements" grep -q -F -- "$withheld" <<<"$activity"
  for p in $paths; do
    local where=""
    log_has "$m$p" && where="$where log"
    grep -q -F -- "$m$p" <<<"$activity" && where="$where pg_stat_activity"
    grep -q -F -- "$m$p" <<<"$statements" && where="$where pg_stat_statements"
    [ -n "$where" ] && echo "# $p leaked to:$where"
    check "leaks[$round]: $p: made-up secret absent from the log, pg_stat_activity and pg_stat_statements" test -z "$where"
  done
  check "leaks[$round]: API key absent from pg_stat_activity and pg_stat_statements" \
    test "${activity/$key/}" = "$activity" -a "${statements/$key/}" = "$statements"

  # Utility statements run their real text, not the masked copy passed down.
  local ran
  ran=$(q -d "$db" 2>&1 <<SQL
BEGIN;
DO \$\$BEGIN PERFORM sdr_creds.authenticate('$key'); END\$\$;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sdr_creds.authenticate('$key');
CALL app_leak.login_proc('$key');
PREPARE lit AS SELECT sdr_creds.authenticate('$key') = '$org';
EXECUTE lit;
PREPARE par(text) AS SELECT sdr_creds.authenticate(\$1) = '$org';
EXECUTE par('$key');
SELECT 'done';
COMMIT;
SQL
  )
  check "leaks[$round]: DO, EXPLAIN ANALYZE, CALL, PREPARE/EXECUTE run with the real key" \
    test "$(grep -c -x -e t -e done <<<"$ran")" = 3
}

scenario 1
check "leaks: sdr_creds is preloaded before pg_stat_statements" \
  [ "$(q -c "SHOW shared_preload_libraries")" = "sdr_creds, pg_stat_statements" ]
# The other order: pg_stat_statements' hooks installed first.
q -c "ALTER SYSTEM SET shared_preload_libraries = pg_stat_statements, sdr_creds" >/dev/null
"$(dirname "$0")/../cluster.sh" restart "$SDR_CLUSTER_DIR"
check "leaks: pg_stat_statements is now preloaded before sdr_creds" \
  [ "$(q -c "SHOW shared_preload_libraries")" = "pg_stat_statements, sdr_creds" ]
scenario 2
check "leaks: API key absent from the server log" not log_has "$key"
check "leaks: API key absent from the data directory" not data_has "$key"

q -c "ALTER SYSTEM RESET ALL" >/dev/null
"$(dirname "$0")/../cluster.sh" restart "$SDR_CLUSTER_DIR"
rm -rf "$hold"
dropdb "$db"
exit $((failures > 0))
