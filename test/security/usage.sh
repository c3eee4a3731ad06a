#!/usr/bin/env bash
# Usage statistics in shared memory under load and at their size limit:
# 16 concurrent clients x 1000 calls give exact counts; with
# sdr_creds.usage_max at its minimum, more distinct principals (and failing
# key prefixes) than the tables hold keep the most recently used ones and
# never more entries than the maximum; a restart empties the statistics.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_usage
org=00000000-0000-4000-8000-0000000000f1
fresh_db "$db"

# 1. Exact counts under concurrency: each transaction authenticates and reads.
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'usage load') ->> 'key'")
key_id=$(q -d "$db" -c "SELECT id FROM sdr_creds.api_keys WHERE org_id = '$org'")
q -d "$db" -c "BEGIN; SELECT sdr_creds.act_as('$org');
  SELECT sdr_creds.store('crm', NULL, 'made-up-usage-token', '{}'); COMMIT;" >/dev/null
script="$SDR_CLUSTER_DIR/usage.pgbench"
(umask 077; cat > "$script" <<PGB
BEGIN;
SELECT sdr_creds.authenticate('$key') IS NOT NULL;
SELECT sdr_creds.get_by_provider('crm') IS NOT NULL;
COMMIT;
PGB
)
unset key
q -d "$db" -c "SELECT sdr_creds.usage_reset()" >/dev/null
pgbench -n -M prepared -c 16 -j 4 -t 1000 -f "$script" "$db" >"$SDR_CLUSTER_DIR/usage.out" 2>&1
rc=$?
rm -f "$script"
counts=$(q -d "$db" -c "SELECT string_agg(action || '=' || calls || '/' || failures || '@' || last_client, ' ' ORDER BY action)
                          FROM sdr_creds.usage WHERE principal = 'key:$key_id' AND org_id = '$org'")
check "usage: 16 clients x 1000 calls, pgbench succeeded" [ "$rc" = 0 ]
check "usage: exact counts under concurrency (authenticate and get_by_provider 16000 each, no failure)" \
  [ "$counts" = "authenticate=16000/0@local get_by_provider=16000/0@local" ]
[ "$counts" = "authenticate=16000/0@local get_by_provider=16000/0@local" ] || echo "# got: $counts"

# 2. Eviction at the size limit (sdr_creds.usage_max = 100, its minimum).
q -c "ALTER SYSTEM SET sdr_creds.usage_max = 100" >/dev/null
test/cluster.sh restart "$SDR_CLUSTER_DIR"
check "usage: sdr_creds.usage_max set to 100 by a restart" [ "$(q -d "$db" -c "SHOW sdr_creds.usage_max")" = 100 ]
check "usage: a restart empties the statistics" \
  [ "$(q -d "$db" -c "SELECT (SELECT count(*) FROM sdr_creds.usage) + (SELECT count(*) FROM sdr_creds.auth_failures)")" = 0 ]
# 150 keys, each authenticated once in order: 150 distinct principals.
q -d "$db" -c "CREATE TABLE usage_keys AS
  SELECT n, sdr_creds.create_api_key('$org', 'usage ' || n) ->> 'key' AS key FROM generate_series(1, 150) n;
  ALTER TABLE usage_keys ADD COLUMN id uuid;
  UPDATE usage_keys u SET id = k.id FROM sdr_creds.api_keys k WHERE k.key_hash = sha256(convert_to(u.key, 'UTF8'));
  SELECT sdr_creds.usage_reset()" >/dev/null
q -d "$db" -c "DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT key FROM usage_keys ORDER BY n LOOP PERFORM sdr_creds.authenticate(r.key); END LOOP; END \$\$" >/dev/null
# A backend's last pending counts reach the table as it exits; until then a
# reader adds them to it (their rows may be more than usage_max). Waits (10 s at
# most) until no other backend of the database is left.
settled() {
  for _ in $(seq 100); do
    [ "$(q -d "$db" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")" = 0 ] && return 0
    sleep 0.1
  done
  echo "# other backends still connected"; return 1
}
usage_state() {   # entries, of which the newest 90 keys, and whether key 1 is still there
  settled
  q -d "$db" -c "SELECT (SELECT count(*) FROM sdr_creds.$1) || ' '
    || (SELECT count(*) FROM usage_keys u JOIN sdr_creds.$1 s ON $2 WHERE u.n > 60) || ' '
    || (SELECT count(*) FROM usage_keys u JOIN sdr_creds.$1 s ON $2 WHERE u.n = 1)"
}
read -r entries newest oldest <<<"$(usage_state usage "s.principal = 'key:' || u.id")"
check "usage: 150 principals in a table of 100 keep at most 100 entries (got $entries)" [ "$entries" -le 100 -a "$entries" -ge 90 ]
check "usage: eviction keeps the 90 most recently used principals" [ "$newest" = 90 ]
check "usage: eviction drops the least recently used principal" [ "$oldest" = 0 ]
# A principal used again all along stays while 149 others pass through the table
# (the clock spares a row used since its hand last passed): its count never restarts.
q -d "$db" -c "SELECT sdr_creds.usage_reset()" >/dev/null
q -d "$db" -c "DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT key FROM usage_keys WHERE n > 1 ORDER BY n LOOP
    PERFORM sdr_creds.authenticate((SELECT key FROM usage_keys WHERE n = 1));
    PERFORM sdr_creds.authenticate(r.key);
  END LOOP; END \$\$" >/dev/null
settled
check "usage: a principal used all along is kept while 149 others pass through a table of 100 (149 calls)" \
  [ "$(q -d "$db" -c "SELECT s.calls FROM usage_keys u JOIN sdr_creds.usage s ON s.principal = 'key:' || u.id WHERE u.n = 1")" = 149 ]
# The same for failed authentications: 150 revoked keys, each a distinct prefix.
q -d "$db" -c "UPDATE sdr_creds.api_keys SET revoked_at = now() WHERE id IN (SELECT id FROM usage_keys)" >/dev/null
q -d "$db" -c "DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT key FROM usage_keys ORDER BY n LOOP
    BEGIN PERFORM sdr_creds.authenticate(r.key); EXCEPTION WHEN OTHERS THEN NULL; END;
  END LOOP; END \$\$" >/dev/null
read -r entries newest oldest <<<"$(usage_state auth_failures \
  "s.key_prefix = (SELECT k.prefix FROM sdr_creds.api_keys k WHERE k.id = u.id) AND s.last_reason = 'revoked'")"
check "usage: 150 failing prefixes in a table of 100 keep at most 100 entries (got $entries)" [ "$entries" -le 100 -a "$entries" -ge 90 ]
check "usage: failed-authentication eviction keeps the 90 most recent prefixes" [ "$newest" = 90 ]
check "usage: failed-authentication eviction drops the oldest prefix" [ "$oldest" = 0 ]

# 3. The client an HTTP server gives for its peer is the one counted, for the
#    call, the key's last use and failed authentications alike.
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'usage client') ->> 'key'")
q -d "$db" >/dev/null 2>&1 <<SQL
SELECT sdr_creds.usage_reset();
BEGIN; SELECT sdr_creds.authenticate_headers('$key', NULL, '198.51.100.9'); SELECT sdr_creds.get_by_provider('crm'); COMMIT;
SELECT sdr_creds.authenticate_headers('sk_live_made-up-unknown-key', NULL, '2001:db8::9');
SQL
unset key
check "usage: the given client is the call's last client" \
  [ "$(q -d "$db" -c "SELECT string_agg(action || '@' || last_client, ' ' ORDER BY action) FROM sdr_creds.usage")" = \
    "authenticate@198.51.100.9 get_by_provider@198.51.100.9" ]
check "usage: list_api_keys shows the given client as the key's last use" \
  [ "$(q -d "$db" -c "SELECT last_used_from FROM sdr_creds.list_api_keys('$org') WHERE name = 'usage client'")" = 198.51.100.9 ]
check "usage: a failed authentication is counted under the given client" \
  [ "$(q -d "$db" -c "SELECT client || ' ' || last_reason FROM sdr_creds.auth_failures")" = "2001:db8::9 unknown_key" ]

# 4. A backend's pending counts (counted in its own slot, moved into the table
#    at most once a second) are read at once by another backend while it is
#    connected and idle, and usage_reset drops them.
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'usage idle') ->> 'key'")
idle_id=$(q -d "$db" -c "SELECT id FROM sdr_creds.api_keys WHERE name = 'usage idle'")
idle_calls() { q -d "$db" -c "SELECT coalesce(sum(calls), 0) FROM sdr_creds.usage WHERE principal = 'key:$idle_id'"; }
coproc IDLE { q -d "$db" 2>&1; }
say() {  # runs an authentication in the idle session and waits (10 s at most) for its answer
  local got; echo "SELECT sdr_creds.authenticate('$key') IS NOT NULL;" >&"${IDLE[1]}"
  read -r -t 10 got <&"${IDLE[0]}"; [ "$got" = t ]
}
check "usage: a session authenticates 3 times and stays connected" say && say && say
check "usage: its 3 calls are read at once by another backend" [ "$(idle_calls)" = 3 ]
q -d "$db" -c "SELECT sdr_creds.usage_reset()" >/dev/null
check "usage: usage_reset drops a connected backend's pending counts" [ "$(idle_calls)" = 0 ]
check "usage: its next call counts from zero" say
check "usage: after the reset, 1 call" [ "$(idle_calls)" = 1 ]
exec {IDLE[1]}>&-; wait "$IDLE_PID" 2>/dev/null
unset key

q -c "ALTER SYSTEM RESET sdr_creds.usage_max" >/dev/null
test/cluster.sh restart "$SDR_CLUSTER_DIR"
check "usage: sdr_creds.usage_max back to its default" [ "$(q -d "$db" -c "SHOW sdr_creds.usage_max")" = 5000 ]
dropdb "$db"
exit $((failures > 0))
