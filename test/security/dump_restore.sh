#!/usr/bin/env bash
# Dump and restore: pg_dump carries the credentials, API keys and key
# fingerprints; in the restored database (same keyring) the same key reads the
# same secrets, and nothing in the dump is plaintext.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
src=sdr_dump_src; dst=sdr_dump_dst
org=00000000-0000-4000-8000-0000000000a9
marker="DUMPMARK$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
fresh_db "$src"
dropdb --if-exists "$dst" >/dev/null 2>&1
key=$(q -d "$src" -c "SELECT sdr_creds.create_api_key('$org', 'dump') ->> 'key'")
q -d "$src" >/dev/null <<SQL
BEGIN;
SELECT sdr_creds.authenticate('$key');
SELECT sdr_creds.store('salesforce', 'https://dump.example', '$marker-access', '{"refresh_token": "$marker-refresh", "instance_url": "https://dump.example"}');
COMMIT;
SQL
dump="$SDR_CLUSTER_DIR/sdr_dump.custom"
pg_dump -Fc -f "$dump" "$src" 2>"$SDR_CLUSTER_DIR/dump.err"
createdb "$dst" && pg_restore -d "$dst" "$dump" 2>"$SDR_CLUSTER_DIR/restore.err"
restored=$(q -d "$dst" -c "BEGIN; SELECT sdr_creds.authenticate('$key') IS NOT NULL; SELECT sdr_creds.get_by_provider('salesforce') ->> 'access_token'; COMMIT;" 2>&1 | tail -1)
counts=$(q -d "$dst" -c "SELECT (SELECT count(*) FROM sdr_creds.credentials) || '/' || (SELECT count(*) FROM sdr_creds.api_keys) || '/' || (SELECT count(*) FROM sdr_creds.key_versions)")

check "dump/restore: rows of all three tables are dumped and restored" [ "$counts" = "1/1/1" ]
check "dump/restore: the same API key reads the same token after restore" [ "$restored" = "$marker-access" ]
check "dump/restore: the dump holds no plaintext secret" not grep -a -q -F "$marker" "$dump"
check "dump/restore: pg_dump and pg_restore reported no error" [ ! -s "$SDR_CLUSTER_DIR/dump.err" -a ! -s "$SDR_CLUSTER_DIR/restore.err" ]
[ -s "$SDR_CLUSTER_DIR/restore.err" ] && head -5 "$SDR_CLUSTER_DIR/restore.err" | sed 's/^/# /'
rm -f "$dump"
dropdb "$src"; dropdb "$dst"
exit $((failures > 0))
