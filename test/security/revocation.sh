#!/usr/bin/env bash
# Revocation and expiry take effect at once, also in a session that has
# already used the key (backends cache verified keys).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_revocation
org=00000000-0000-4000-8000-0000000000e1
fresh_db "$db"
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'to revoke') ->> 'key'")
key2=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('$org', 'to expire') ->> 'key'")
hash="sha256(convert_to('$key', 'UTF8'))"
hash2="sha256(convert_to('$key2', 'UTF8'))"
# One long session: use both keys, let other sessions revoke one and expire the
# other, then use them again in the same session.
out=$(psql -X -A -t -d "$db" 2>&1 <<SQL
SELECT 'before ' || sdr_creds.authenticate('$key');
SELECT 'before2 ' || sdr_creds.authenticate('$key2');
\! psql -X -q -d $db -c "SELECT sdr_creds.revoke_api_key(id) FROM sdr_creds.api_keys WHERE key_hash = $hash" >/dev/null
\! psql -X -q -d $db -c "UPDATE sdr_creds.api_keys SET expires_at = now() - interval '1 s' WHERE key_hash = $hash2" >/dev/null
SELECT 'after ' || sdr_creds.authenticate('$key');
SELECT 'after2 ' || sdr_creds.authenticate('$key2');
SQL
)
check "revocation: the keys worked in the session first" grep -q "^before2 $org" <<<"$out"
check "revocation: a key revoked by another session is refused at once in this one" \
  test "$(grep -c 'Invalid or missing authentication credentials' <<<"$out")" = 2
check "revocation: nothing authenticated after revocation or expiry" not grep -q "^after" <<<"$out"
dropdb "$db"
exit $((failures > 0))
