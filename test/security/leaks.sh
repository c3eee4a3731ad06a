#!/usr/bin/env bash
# Leaks: secrets stored or presented with a unique marker never reach the
# heap, the WAL, the server log (log_statement=all, durations, errors with
# their statements and parameters), pg_stat_activity or pg_stat_statements.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_leaks
marker="LEAKMARK$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"

q -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_min_duration_statement = 0" \
  -c "ALTER SYSTEM SET log_min_error_statement = 'info'" -c "ALTER SYSTEM SET log_parameter_max_length_on_error = -1" \
  -c "ALTER SYSTEM SET log_error_verbosity = 'verbose'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
fresh_db "$db"
q -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('00000000-0000-4000-8000-0000000000c1') ->> 'key'")

# 1. Literals in SQL text: store, a failing store, a bogus key; then stay idle
#    so pg_stat_activity keeps showing the last statement.
psql -X -q -d "$db" >/dev/null 2>&1 <<SQL &
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
\! sleep 2
SQL
idle=$!
sleep 1
activity=$(q -d "$db" -c "SELECT string_agg(query, ' | ') FROM pg_stat_activity WHERE datname = '$db'")
wait $idle

# 2. Bind parameters (extended protocol), with pgbench as the client.
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

check "leaks: the credentials were stored (3 rows)" [ "$stored" = 3 ]
check "leaks: marker absent from heap, indexes and WAL" not data_has "$marker"
check "leaks: marker absent from the server log (log_statement=all, errors, parameters)" not log_has "$marker"
check "leaks: the log did record the statements, withheld" log_has "<withheld by sdr_creds>"
check "leaks: marker absent from pg_stat_activity" test -n "$activity" -a "${activity/$marker/}" = "$activity"
check "leaks: marker absent from pg_stat_statements" test -n "$statements" -a "${statements/$marker/}" = "$statements"
check "leaks: API key absent from the server log" not log_has "$key"
check "leaks: API key absent from the data directory" not data_has "$key"

q -c "ALTER SYSTEM RESET ALL" -c "SELECT pg_reload_conf()" >/dev/null
dropdb "$db"
exit $((failures > 0))
