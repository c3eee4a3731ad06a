#!/usr/bin/env bash
# A hot standby (pg_basebackup -R from the test cluster, streaming, on a Unix
# socket and loopback) serves reads: authentication, decryption and the
# usage statistics work there without writing; a key revoked on the primary
# stops working on the standby once the revoke has replayed (and a key revoked
# meanwhile leaves another key cached there), and so does a
# JWT whose key was removed from its issuer (tokens minted by python3-jwt).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_standby
org=00000000-0000-4000-8000-0000000000e5
bindir=${SDR_PG_ROOT:-}$(pg_config --bindir)
dir=$SDR_CLUSTER_DIR/standby
as_owner() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

fresh_db "$db"
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'standby') ->> 'key'")
q -d "$db" -c "BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.store('salesforce', NULL, 'made-up-standby-token', '{}'); COMMIT;" >/dev/null

as_owner rm -rf "$dir"
as_owner "$bindir/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$dir/data" -R -X stream -c fast >"$SDR_CLUSTER_DIR/standby.log" 2>&1
# from PGPORT + 1000, the next free port (retried if taken meanwhile)
port=$("$(dirname "$0")/../cluster.sh" standby "$dir/data" "$dir" $((PGPORT + 1000)) "$dir/postgres.log")
sq() { q -h "$dir" -p "$port" -d "$db" "$@"; }
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  as_owner rm -rf "$dir"
}
trap cleanup EXIT
check "standby: started as a hot standby" [ "$(sq -c "SELECT pg_is_in_recovery()")" = t ]

read_sql="BEGIN; SELECT sdr_creds.authenticate('$key') IS NOT NULL; SELECT sdr_creds.get_by_provider('salesforce') ->> 'access_token'; SELECT json_array_length(sdr_creds.list()); COMMIT;"
got=$(sq -c "$read_sql" 2>&1)
check "standby: a key authenticates, get_by_provider decrypts, list answers" \
  [ "$(sed -n 2,3p <<<"$got" | tr '\n' ' ')" = "made-up-standby-token 1 " ]
counted=$(sq -c "SELECT string_agg(action || '=' || calls, ' ' ORDER BY action) FROM sdr_creds.usage WHERE org_id = '$org'")
check "standby: the calls are counted there (no table written)" \
  [ "$counted" = "authenticate=1 get_by_provider=1 list=1" ]

# The HTTP server with --db-read: GETs on the standby, writes on the primary.
server_log=$SDR_CLUSTER_DIR/standby_server.log
"$SDR_SERVER" --listen 127.0.0.1 --port 0 --pool 2 --log-level info \
  --db "host=$PGHOST port=$PGPORT dbname=$db user=postgres" \
  --db-read "host=$dir port=$port dbname=$db user=postgres" >"$server_log" 2>&1 &
server=$!
http_port=
for _ in $(seq 100); do
  http_port=$(sed -n 's/.*listening on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$server_log" | head -1)
  [ -n "$http_port" ] && break
  sleep 0.05
done
base="http://127.0.0.1:$http_port/integration-credentials"
statuses() {  # N requests: METHOD PATH [BODY] -> their statuses, counted
  local n=$1; shift
  for _ in $(seq "$n"); do
    curl -s -o /dev/null -w '%{http_code}\n' -X "$1" -H "X-API-Key: $key" ${3:+-H 'Content-Type: application/json' -d "$3"} "$base$2"
  done | sort | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " }'
}
calls() {  # on standby|primary: calls of action by the org
  local run=q; [ "$1" = standby ] && run=sq
  $run -d "$db" -c "SELECT coalesce(sum(calls), 0) FROM sdr_creds.usage WHERE org_id = '$org' AND action = '$2'"
}
q -d "$db" -c "SELECT sdr_creds.usage_reset()" >/dev/null
sq -c "SELECT sdr_creds.usage_reset()" >/dev/null
check "standby routing: 20 GETs answered 200" [ "$(statuses 20 GET /provider/salesforce)" = "200=20" ]
check "standby routing: the GETs were served by the standby" \
  [ "$(calls standby get_by_provider) $(calls primary get_by_provider)" = "20 0" ]
check "standby routing: a POST is answered by the primary" \
  [ "$(statuses 1 POST '' '{"provider": "hubspot", "access_token": "made-up-standby-hs"}')" = "201=1" ]
check "standby routing: the store ran on the primary" [ "$(calls primary store) $(calls standby store)" = "1 0" ]

replayed() {  # waits until the standby has replayed what the primary wrote so far
  local lsn; lsn=$(q -d "$db" -c "SELECT pg_current_wal_lsn()")
  for _ in $(seq 200); do
    [ "$(sq -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return
    sleep 0.05
  done
}

# An issuer's key removed on the primary: refused on the standby once replayed,
# also by the server's standby connections, which verified (and cached) the token.
mapfile -t jose < <(/usr/bin/python3 - "$(dirname "$0")/../jwt" "$org" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import tokens as T
k = T.Keys()
both = {"keys": [T.jwk(k.p256, kid="sb-a", alg="ES256"), T.jwk(k.ed, kid="sb-b", alg="EdDSA")]}
claims = {"iss": "https://standby.example/", "org_id": sys.argv[2], "sub": "standby", "exp": T.now() + 600}
print(json.dumps(both))
print(json.dumps({"keys": both["keys"][1:]}))
print(T.mint(k.p256, "ES256", claims, kid="sb-a"))
PY
)
bearer() {  # N GETs with the JWT -> their statuses, counted
  for _ in $(seq "$1"); do
    curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer ${jose[2]}" "$base/provider/salesforce"
  done | sort | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " }'
}
q -d "$db" -c "SELECT sdr_creds.set_issuer('https://standby.example/', '${jose[0]}')" >/dev/null
replayed
check "standby: a JWT of an issuer authenticates there (20 GETs through the standby connections)" \
  [ "$(bearer 20)" = "200=20" ]
q -d "$db" -c "SELECT sdr_creds.set_issuer('https://standby.example/', '${jose[1]}')" >/dev/null
replayed
check "standby: once the removal of its key has replayed, the JWT gets 401 from the standby connections" \
  [ "$(bearer 5)" = "401=5" ]
refused=$(printf '%s\n' "\\set t '${jose[2]}'" "SELECT sdr_creds.authenticate(:'t');" | sq 2>&1)
check "standby: ... and is refused over SQL there" grep -q "Invalid or missing authentication credentials" <<<"$refused"
unset jose

# Churn: key A revoked on the primary while a standby session, in one READ
# COMMITTED transaction, uses key B. Once replayed, B is not read again there
# (the session's own api_keys index scans, pg_stat_xact_user_tables, do not
# grow: only A's entry was dropped) and A is refused.
churn_org=00000000-0000-4000-8000-0000000000e6
key_a=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$churn_org', 'standby a') ->> 'key'")
key_b=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$churn_org', 'standby b') ->> 'key'")
replayed
scans="coalesce((SELECT idx_scan FROM pg_stat_xact_user_tables WHERE relid = 'sdr_creds.api_keys'::regclass), 0)"
churned=$(sq 2>&1 <<SQL
BEGIN;
SELECT sdr_creds.authenticate('$key_a') IS NOT NULL AND sdr_creds.authenticate('$key_b') IS NOT NULL;
SELECT set_config('churn.scans', ($scans)::text, false) IS NOT NULL;
\! psql -XAtq -d $db -c "SELECT sdr_creds.revoke_api_key(id) FROM sdr_creds.api_keys WHERE org_id = '$churn_org' AND name = 'standby a'" >/dev/null && lsn=\$(psql -XAtq -d $db -c 'SELECT pg_current_wal_lsn()') && for i in \$(seq 200); do [ "\$(psql -XAtq -h $dir -p $port -d $db -c "SELECT pg_last_wal_replay_lsn() >= '\$lsn'")" = t ] && break; sleep 0.05; done
SELECT count(*) FROM generate_series(1, 200) WHERE sdr_creds.authenticate('$key_b') = '$churn_org';
SELECT $scans - current_setting('churn.scans')::bigint;
COMMIT;
SELECT sdr_creds.authenticate('$key_a');
SQL
)
check "standby churn: key B used 200 times after key A's revoke replayed, not read again" \
  [ "$(sed -n 1,4p <<<"$churned" | tr '\n' ' ')" = "t t 200 0 " ]
check "standby churn: key A refused there" grep -q "Invalid or missing authentication credentials" <<<"$churned"
unset key_a key_b

q -d "$db" -c "SELECT sdr_creds.revoke_api_key(id) FROM sdr_creds.api_keys WHERE org_id = '$org'" >/dev/null
replayed
revoked=$(sq -c "SELECT sdr_creds.authenticate('$key')" 2>&1)
check "standby: a key revoked on the primary is refused once the revoke has replayed" \
  grep -q "Invalid or missing authentication credentials" <<<"$revoked"
check "standby routing: the revoked key gets 401 from the server's standby connections" \
  [ "$(statuses 5 GET /provider/salesforce)" = "401=5" ]

# The standby stops: reads go to the primary, with no 5xx.
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'standby 2') ->> 'key'")
as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
q -d "$db" -c "SELECT sdr_creds.usage_reset()" >/dev/null
check "standby routing: with the standby down, 20 GETs answered 200 by the primary" \
  [ "$(statuses 20 GET /provider/salesforce)" = "200=20" -a "$(calls primary get_by_provider)" = 20 ]
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=
check "standby routing: no key or token in the server's log" not grep -q -F -e "$key" -e made-up "$server_log"
unset key
dropdb "$db"
exit $((failures > 0))
