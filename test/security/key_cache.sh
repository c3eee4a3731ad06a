#!/usr/bin/env bash
# The per-backend API-key cache holds at most KEY_CACHE_MAX (4,096) keys and
# evicts one entry at a time when full: a session using more keys than that
# keeps answering right for every key (an evicted key is read again), keeps
# its memory bounded, and still refuses at once a key revoked elsewhere,
# cached or evicted.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_key_cache
fresh_db "$db"
org="('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid"
q -d "$db" -c "CREATE TABLE cache_keys AS SELECT n, sdr_creds.create_api_key($org, 'cache') ->> 'key' AS key
  FROM generate_series(1, 5000) n" >/dev/null
# keys used in the session: n (the right org) or '-' (refused), counted
pass() { echo "SELECT '$1 ' || count(*) FILTER (WHERE sdr_creds.authenticate(key) = $org) || ' ' || count(*) FROM cache_keys WHERE $2;"; }
revoke() { echo "\\! psql -X -q -d $db -c \"SELECT sdr_creds.revoke_api_key(k.id) FROM sdr_creds.api_keys k JOIN cache_keys c ON k.key_hash = sha256(convert_to(c.key, 'UTF8')) WHERE c.n = $1\" >/dev/null"; }
out=$(psql -X -A -t -d "$db" 2>&1 <<SQL
$(pass first 'true')
$(pass second 'true')
SELECT 'memory ' || total_bytes FROM pg_backend_memory_contexts WHERE name = 'sdr_creds API keys';
$(revoke 5000)
$(revoke 1)
\set ON_ERROR_STOP 0
SELECT sdr_creds.authenticate(key) FROM cache_keys WHERE n = 5000;
SELECT sdr_creds.authenticate(key) FROM cache_keys WHERE n = 1;
$(pass third 'n BETWEEN 2 AND 4999')
SQL
)
check "key cache: 5,000 keys in one session, each authenticates as its own org" grep -qx "first 5000 5000" <<<"$out"
check "key cache: and again, with evictions meanwhile" grep -qx "second 5000 5000" <<<"$out"
mem=$(sed -n 's/^memory //p' <<<"$out")
check "key cache: its memory stays bounded (${mem:-?} bytes <= 1 MiB)" test "${mem:-0}" -gt 0 -a "${mem:-0}" -le 1048576
check "key cache: a key revoked elsewhere is refused at once, cached or evicted" \
  test "$(grep -c 'Invalid or missing authentication credentials' <<<"$out")" = 2
check "key cache: the other keys still authenticate" grep -qx "third 4998 4998" <<<"$out"
dropdb "$db"
exit $((failures > 0))
