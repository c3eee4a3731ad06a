#!/usr/bin/env bash
# Audit lines: with sdr_creds.audit = all, each API action and each failure
# kind writes exactly one "AUDIT: sdr_creds ..." line with the right fields;
# no key, token or JWT appears in the log; the application role cannot turn
# auditing off; with the default (writes), reads write nothing.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_audit
org=00000000-0000-4000-8000-0000000000d1
other=00000000-0000-4000-8000-0000000000d2
marker="AUDITMARK$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
fresh_db "$db"
q -d "$db" >/dev/null <<SQL
DO \$\$ BEGIN CREATE ROLE sdr_audit_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
GRANT USAGE ON SCHEMA sdr_creds TO sdr_audit_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sdr_creds TO sdr_audit_app;
SQL
log="$SDR_CLUSTER_DIR/postgres.log"
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'audit') ->> 'key'")
key_id=$(q -d "$db" -c "SELECT id FROM sdr_creds.api_keys WHERE org_id = '$org'")
revoked=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'audit revoked') ->> 'key'")
q -d "$db" -c "SELECT sdr_creds.revoke_api_key(id) FROM sdr_creds.api_keys WHERE name = 'audit revoked'" >/dev/null
other_id=$(q -d "$db" -c "BEGIN; SELECT sdr_creds.act_as('$other'); SELECT (sdr_creds.store('other-crm', NULL, 'made-up-$marker-other', '{}')).credential ->> 'id'; COMMIT;" | sed -n 2p)
secret=$(cat "$SDR_CLUSTER_DIR/keys/jwt_secret")
hs256() {  # SUB: an HS256 JWT for $org with that sub, under the cluster's jwt_secret
  q -d "$db" <<SQL
SELECT s || '.' || rtrim(translate(encode(public.hmac(s, '$secret', 'sha256'), 'base64'), E'+/\n', '-_'), '=')
  FROM (SELECT rtrim(translate(encode(convert_to('{"alg":"HS256","typ":"JWT"}', 'UTF8'), 'base64'), E'+/\n', '-_'), '=') || '.' ||
               rtrim(translate(encode(convert_to('{"org_id": "$org", "sub": "$1"}', 'UTF8'), 'base64'), E'+/\n', '-_'), '=') AS s) x
SQL
}
jwt=$(hs256 audit-user)

# New sessions see a reloaded setting once the postmaster has read the file.
audit_level() {
  q -c "ALTER SYSTEM $1" -c "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 100); do
    [ "$(q -d "$db" -c "SHOW sdr_creds.audit")" = "$2" ] && return
    sleep 0.05
  done
}
audit_level "SET sdr_creds.audit = 'all'" all
start=$(stat -c %s "$log")
psql -X -q -d "$db" -U sdr_audit_app -v ON_ERROR_STOP=0 >/dev/null 2>&1 <<SQL
BEGIN;
SELECT sdr_creds.authenticate('$key');
SELECT sdr_creds.store('salesforce', 'https://audit.example', 'made-up-$marker-token', '{"refresh_token": "made-up-$marker-refresh"}');
SELECT sdr_creds.get_by_provider('salesforce');
SELECT sdr_creds.list();
COMMIT;
BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.get_by_provider('nothing-here'); ROLLBACK;
BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.get('$other_id'); ROLLBACK;
BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.get('00000000-0000-4000-8000-00000000dead'); ROLLBACK;
BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.list(0); ROLLBACK;
BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.delete(id) FROM sdr_creds.credentials WHERE false; ROLLBACK;
SELECT sdr_creds.authenticate('sk_live_${marker}unknown');
SELECT sdr_creds.authenticate('$revoked');
SELECT sdr_creds.authenticate('$jwt' || 'x');
SELECT sdr_creds.get_by_provider('salesforce');
BEGIN; SELECT sdr_creds.authenticate('$jwt'); SELECT sdr_creds.list(); COMMIT;
SELECT sdr_creds.authenticate('$key');
BEGIN; SELECT sdr_creds.authenticate('$jwt'); SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.list(); ROLLBACK;
BEGIN; SELECT sdr_creds.authenticate_headers('$key', NULL, '203.0.113.7'); SELECT sdr_creds.get_by_provider('salesforce'); COMMIT;
SELECT sdr_creds.authenticate_headers('sk_live_${marker}fromhttp', NULL, '2001:db8::7');
SELECT sdr_creds.authenticate_headers('$key', NULL, '203.0.113.8 x=1');
SET sdr_creds.audit = 'none';
SQL
id=$(q -d "$db" -c "SELECT id FROM sdr_creds.credentials WHERE org_id = '$org' AND provider = 'salesforce'")
psql -X -q -d "$db" -U sdr_audit_app >/dev/null 2>&1 <<SQL
BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.delete('$id'); COMMIT;
SQL
lines=$(tail -c +"$((start + 1))" "$log" | grep -a -o 'AUDIT: sdr_creds .*')
count() { grep -c -E -- "$1" <<<"$lines"; }
one() { check "audit: $1" [ "$(count "$2")" = 1 ]; }
k="principal=key:$key_id"
# of the 11 authentications with the key, two have no call after them in their
# transaction (the delete over no rows, and the one alone)
check "audit: an authentication followed by a call is written in the call's line; alone, in its own" \
  [ "$(count "^AUDIT: sdr_creds action=authenticate org=$org $k credential=- provider=- result=ok client=local$")" = 2 ]
one "an authentication replaced before any call has its own line" "action=authenticate org=$org principal=jwt:audit-user credential=- provider=- result=ok client=local$"
one "the HTTP server's client address, with the backend's client as via" \
  "action=get_by_provider org=$org $k credential=- provider=salesforce result=ok client=203.0.113.7 via=local$"
one "a failed authentication from a given client" \
  "action=authenticate org=- principal=key-prefix:live_AUDI .* result=401 client=2001:db8::7 via=local reason=unknown_key$"
one "a client that is not an address is not written" "action=authenticate org=$org $k .* result=ok client=\\? via=local$"
one "store: org, key id, credential, provider" "action=store org=$org $k credential=$id provider=salesforce result=ok client=local$"
one "get_by_provider" "action=get_by_provider org=$org $k credential=- provider=salesforce result=ok client=local$"
one "get_by_provider not found: 404" "action=get_by_provider org=$org $k credential=- provider=nothing-here result=404"
one "get of another org's credential: 403" "action=get org=$org $k credential=$other_id provider=- result=403"
one "get of no such id: 404" "action=get org=$org $k credential=00000000-0000-4000-8000-00000000dead provider=- result=404"
one "list with a bad limit: 422" "action=list org=$org $k credential=- provider=- result=422"
one "delete" "action=delete org=$org $k credential=$id provider=- result=ok"
check "audit: unknown key: 401 with its prefix, not the key" [ "$(count "action=authenticate org=- principal=key-prefix:live_AUDI credential=- provider=- result=401 client=local reason=unknown_key$")" = 1 ]
one "revoked key: 401" "action=authenticate org=- principal=key-prefix:live_[A-Za-z0-9_-]{4} .* result=401 client=local reason=revoked$"
one "bad JWT signature: 401" "action=authenticate org=- principal=jwt:- .* result=401 client=local reason=invalid_jwt$"
one "no credentials: 401" "action=authenticate org=- principal=- .* result=401 client=local reason=no_credentials$"
one "a call after authenticating with a JWT: its sub" "action=list org=$org principal=jwt:audit-user credential=- provider=- result=ok"
check "audit: list appears three times (key, JWT, key)" [ "$(count "action=list org=$org .* result=ok")" = 3 ]
check "audit: nothing secret in the audit lines or the log" not grep -a -q -F -e "$marker" -e "$key" -e "$jwt" -e "$revoked" "$log"
# A sub shaped like an API key (an identity provider's choice) names the caller
# as "jwt:?" in the audit line and in the usage statistics, which others read.
keysub=$(hs256 "sk_live_${marker}sub")
start=$(stat -c %s "$log")
psql -X -q -d "$db" -U sdr_audit_app >/dev/null 2>&1 <<SQL
BEGIN; SELECT sdr_creds.authenticate('$keysub'); SELECT sdr_creds.list(); COMMIT;
SQL
lines=$(tail -c +"$((start + 1))" "$log" | grep -a -o 'AUDIT: sdr_creds .*')
one "a sub shaped like an API key is written as ?" "action=list org=$org principal=jwt:\\? credential=- provider=- result=ok"
check "usage: a sub shaped like an API key is counted as jwt:?, not kept" \
  [ "$(q -d "$db" -c "SELECT count(*) FILTER (WHERE principal = 'jwt:?' AND action = 'list') || ' ' || count(*) FILTER (WHERE principal LIKE '%$marker%') FROM sdr_creds.usage")" = "1 0" ]
check "audit: nothing of that sub in the log" not grep -a -q -F -e "$marker" -e "$keysub" "$log"
denied=$(psql -X -d "$db" -U sdr_audit_app -c "SET sdr_creds.audit = 'none'" 2>&1)
check "audit: the application role cannot turn auditing off" grep -q "permission denied" <<<"$denied"

# The default (writes): reads write no line, writes and failures do.
audit_level "RESET sdr_creds.audit" writes
start=$(stat -c %s "$log")
psql -X -q -d "$db" -U sdr_audit_app >/dev/null 2>&1 <<SQL
BEGIN; SELECT sdr_creds.authenticate('$key'); SELECT sdr_creds.list(); SELECT sdr_creds.store('hubspot', NULL, 'made-up-$marker-hs', '{}'); COMMIT;
SELECT sdr_creds.authenticate('$revoked');
SQL
lines=$(tail -c +"$((start + 1))" "$log" | grep -a -o 'AUDIT: sdr_creds .*')
check "audit=writes: a store and a failed authentication, no reads" \
  [ "$(count "action=store .*provider=hubspot result=ok")" = 1 -a "$(count "reason=revoked")" = 1 -a "$(count "action=(list|authenticate) .*result=ok")" = 0 ]
dropdb "$db"
q -c "DROP ROLE IF EXISTS sdr_audit_app" >/dev/null 2>&1
exit $((failures > 0))
