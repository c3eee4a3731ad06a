#!/usr/bin/env bash
# Concurrent upserts of the same (org, provider) from many clients: no error,
# exactly one row per provider, and every row still decrypts.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_concurrency
org=00000000-0000-4000-8000-0000000000d1
fresh_db "$db"
script="$SDR_CLUSTER_DIR/upsert.pgbench"
cat > "$script" <<PGB
\set p random(1, 8)
BEGIN;
SELECT sdr_creds.act_as('$org');
SELECT created FROM sdr_creds.store('crm' || :p, NULL, 'made-up-token-' || :client_id, '{"refresh_token": "made-up"}');
COMMIT;
PGB
pgbench -n -M prepared -c 16 -j 2 -t 100 -f "$script" "$db" >"$SDR_CLUSTER_DIR/upsert.out" 2>&1
rc=$?
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$SDR_CLUSTER_DIR/upsert.out")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$SDR_CLUSTER_DIR/upsert.out")
rows=$(q -d "$db" -c "SELECT count(*) || '/' || count(DISTINCT provider) FROM sdr_creds.credentials WHERE org_id = '$org'")
readable=$(q -d "$db" -c "BEGIN; SELECT sdr_creds.act_as('$org'); SELECT json_array_length(sdr_creds.list()); COMMIT;" | tail -1)

check "concurrency: 1600 upserts by 16 clients, none failed" [ "$rc" = 0 -a "$processed" = 1600 -a "${failed:-0}" = 0 ]
check "concurrency: one row per (org, provider)" [ "$rows" = "8/8" ]
check "concurrency: every row decrypts after the race" [ "$readable" = 8 ]
[ "$rc" = 0 ] || grep -i error "$SDR_CLUSTER_DIR/upsert.out" | head -3 | sed 's/^/# /'
dropdb "$db"
exit $((failures > 0))
