#!/usr/bin/env bash
# A hot standby (pg_basebackup -R from the test cluster, streaming, on a Unix
# socket and loopback) serves reads: authentication, decryption and the
# usage statistics work there without writing; a key revoked on the primary
# stops working on the standby once the revoke has replayed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_standby
org=00000000-0000-4000-8000-0000000000e5
bindir=${SDR_PG_ROOT:-}$(pg_config --bindir)
dir=$SDR_CLUSTER_DIR/standby
as_owner() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
port=$((PGPORT + 1000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

fresh_db "$db"
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'standby') ->> 'key'")
q -d "$db" -c "BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.store('salesforce', NULL, 'made-up-standby-token', '{}'); COMMIT;" >/dev/null

as_owner rm -rf "$dir"
as_owner "$bindir/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$dir/data" -R -X stream >"$SDR_CLUSTER_DIR/standby.log" 2>&1
as_owner sh -c "cat >> '$dir/data/postgresql.conf'" <<CONF
port = $port
unix_socket_directories = '$dir'
CONF
as_owner env ${SDR_PG_ENV:-} "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null
sq() { q -h "$dir" -p "$port" -d "$db" "$@"; }
check "standby: started as a hot standby" [ "$(sq -c "SELECT pg_is_in_recovery()")" = t ]

read_sql="BEGIN; SELECT sdr_creds.authenticate('$key') IS NOT NULL; SELECT sdr_creds.get_by_provider('salesforce') ->> 'access_token'; SELECT json_array_length(sdr_creds.list()); COMMIT;"
got=$(sq -c "$read_sql" 2>&1)
check "standby: a key authenticates, get_by_provider decrypts, list answers" \
  [ "$(sed -n 2,3p <<<"$got" | tr '\n' ' ')" = "made-up-standby-token 1 " ]
counted=$(sq -c "SELECT string_agg(action || '=' || calls, ' ' ORDER BY action) FROM sdr_creds.usage WHERE org_id = '$org'")
check "standby: the calls are counted there (no table written)" \
  [ "$counted" = "authenticate=1 get_by_provider=1 list=1" ]

q -d "$db" -c "SELECT sdr_creds.revoke_api_key(id) FROM sdr_creds.api_keys WHERE org_id = '$org'" >/dev/null
lsn=$(q -d "$db" -c "SELECT pg_current_wal_lsn()")
for _ in $(seq 200); do
  [ "$(sq -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && break
  sleep 0.05
done
revoked=$(sq -c "SELECT sdr_creds.authenticate('$key')" 2>&1)
check "standby: a key revoked on the primary is refused once the revoke has replayed" \
  grep -q "Invalid or missing authentication credentials" <<<"$revoked"

as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
as_owner rm -rf "$dir"
dropdb "$db"
exit $((failures > 0))
