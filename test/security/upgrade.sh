#!/usr/bin/env bash
# Upgrade path, as pg_stat_statements tests it: install 1.0, write rows (and an
# API key), ALTER EXTENSION ... UPDATE TO '1.1', read every row back unchanged,
# rotate (re-seals every row in format 2, binding dsn and plain metadata), read
# again, update to 1.2 (issuers) and read again, then dump and restore the
# upgraded database and read again. Then 1.1 -> 1.2 with rows written under 1.1.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
db=sdr_upgrade; dst=sdr_upgrade_restored
orgs=(00000000-0000-4000-8000-0000000000b1 00000000-0000-4000-8000-0000000000b2 00000000-0000-4000-8000-0000000000b3)
dropdb --if-exists "$db" >/dev/null 2>&1; dropdb --if-exists "$dst" >/dev/null 2>&1
createdb "$db"
q -d "$db" -c "CREATE EXTENSION sdr_creds VERSION '1.0' CASCADE" >/dev/null 2>&1
version() { q -d "$1" -c "SELECT extversion FROM pg_extension WHERE extname = 'sdr_creds'"; }
check "upgrade: installs version 1.0" [ "$(version "$db")" = 1.0 ]

# Writes, through the API, a salesforce credential for each org (and a hubspot one with "hubspot").
write_rows() {
  for org in "${orgs[@]}"; do
    q -d "$db" >/dev/null <<SQL
BEGIN;
SELECT sdr_creds.act_as('$org');
SELECT sdr_creds.store('salesforce', 'https://$org.example', 'made-up-sf-$org',
  '{"instance_url": "https://$org.example", "refresh_token": "made-up-rt-$org", "api_version": "v58.0"}');
$([ "${1:-}" = hubspot ] && echo "SELECT sdr_creds.store('hubspot', NULL, 'made-up-hs-$org', '{\"portal_id\": \"42\"}');")
COMMIT;
SQL
  done
}
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('${orgs[0]}', 'before upgrade') ->> 'key'")
write_rows hubspot

# Every row, read through the API as its org, as one text (ids, timestamps and all).
read_all() {
  q -d "$1" <<'SQL'
CREATE TEMP TABLE seen (org uuid, id uuid, body text);
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT org_id, id FROM sdr_creds.credentials ORDER BY id LOOP
    PERFORM sdr_creds.act_as(r.org_id);
    INSERT INTO seen VALUES (r.org_id, r.id, sdr_creds.get(r.id)::text);
  END LOOP;
END $$;
SELECT string_agg(body, E'\n' ORDER BY id) FROM seen;
SQL
}
before=$(read_all "$db")
check "upgrade: 6 rows written and read under 1.0" [ "$(grep -c made-up-sf <<<"$before")" = 3 -a "$(wc -l <<<"$before")" = 6 ]

q -d "$db" -c "ALTER EXTENSION sdr_creds UPDATE TO '1.1'" >/dev/null
check "upgrade: ALTER EXTENSION UPDATE TO '1.1' reaches 1.1" [ "$(version "$db")" = 1.1 ]
check "upgrade: rows written by 1.0 keep sealed format 1" \
  [ "$(q -d "$db" -c "SELECT string_agg(DISTINCT seal_format::text, ',') FROM sdr_creds.credentials")" = 1 ]
check "upgrade: every row reads back unchanged after the upgrade" [ "$(read_all "$db")" = "$before" ]
check "upgrade: the API key made under 1.0 still authenticates" \
  [ "$(q -d "$db" -c "SELECT sdr_creds.authenticate('$key')")" = "${orgs[0]}" ]

rotated=$(q -d "$db" -c "SELECT rotated || '/' || remaining FROM sdr_creds.rotate_keys(4)")
rotated2=$(q -d "$db" -c "SELECT rotated || '/' || remaining FROM sdr_creds.rotate_keys(4)")
check "upgrade: rotate_keys re-seals the 1.0 rows in batches (4/2 then 2/0)" [ "$rotated,$rotated2" = "4/2,2/0" ]
check "upgrade: after rotation every row is in sealed format 2" \
  [ "$(q -d "$db" -c "SELECT string_agg(DISTINCT seal_format::text, ',') FROM sdr_creds.credentials")" = 2 ]
after=$(read_all "$db")
check "upgrade: every row reads back unchanged after rotation" [ "$after" = "$before" ]

# Re-sealed rows are bound to their dsn: a changed dsn no longer opens.
tampered=$(q -d "$db" 2>&1 <<SQL
UPDATE sdr_creds.credentials SET dsn = 'https://attacker.example' WHERE org_id = '${orgs[1]}' AND provider = 'salesforce';
BEGIN;
SELECT sdr_creds.act_as('${orgs[1]}');
SELECT sdr_creds.get_by_provider('salesforce');
ROLLBACK;
SQL
)
check "upgrade: a re-sealed row with a changed dsn fails to open" grep -q "could not be decrypted" <<<"$tampered"
q -d "$db" -c "UPDATE sdr_creds.credentials SET dsn = 'https://${orgs[1]}.example' WHERE org_id = '${orgs[1]}' AND provider = 'salesforce'" >/dev/null

q -d "$db" -c "ALTER EXTENSION sdr_creds UPDATE" >/dev/null
check "upgrade: ALTER EXTENSION UPDATE then reaches 1.2" [ "$(version "$db")" = 1.2 ]
check "upgrade: every row reads back unchanged at 1.2" [ "$(read_all "$db")" = "$before" ]
check "upgrade: the API key made under 1.0 still authenticates at 1.2" \
  [ "$(q -d "$db" -c "SELECT sdr_creds.authenticate('$key')")" = "${orgs[0]}" ]
jwks='{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'
q -d "$db" -c "SELECT sdr_creds.set_issuer('https://idp.example/', '$jwks')" >/dev/null
check "upgrade: set_issuer and list_issuers work after the upgrade" \
  [ "$(q -d "$db" -c "SELECT issuer || ' ' || key_ids::text FROM sdr_creds.list_issuers()")" = "https://idp.example/ {k1}" ]

dump="$SDR_CLUSTER_DIR/sdr_upgrade.custom"
pg_dump -Fc -f "$dump" "$db" 2>"$SDR_CLUSTER_DIR/upgrade_dump.err"
createdb "$dst" && pg_restore -d "$dst" "$dump" 2>"$SDR_CLUSTER_DIR/upgrade_restore.err"
check "upgrade: dump and restore of the upgraded database report no error" \
  [ ! -s "$SDR_CLUSTER_DIR/upgrade_dump.err" -a ! -s "$SDR_CLUSTER_DIR/upgrade_restore.err" ]
check "upgrade: the restored database is at 1.2" [ "$(version "$dst")" = 1.2 ]
check "upgrade: the restored database keeps its issuers" \
  [ "$(q -d "$dst" -c "SELECT issuer || ' ' || key_ids::text FROM sdr_creds.list_issuers()")" = "https://idp.example/ {k1}" ]
check "upgrade: every row reads back unchanged after dump and restore" [ "$(read_all "$dst")" = "$before" ]
check "upgrade: the restored trigger still fires for logical replication (ENABLE ALWAYS)" \
  [ "$(q -d "$dst" -c "SELECT string_agg(tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'sdr_creds.api_keys'::regclass")" = "A,A" ]
check "upgrade: the issuers' triggers fire for logical replication (ENABLE ALWAYS)" \
  [ "$(q -d "$dst" -c "SELECT string_agg(tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'sdr_creds.issuers'::regclass AND NOT tgisinternal")" = "A,A" ]
rm -f "$dump"
dropdb "$db"; dropdb "$dst"

# 1.1 -> 1.2: rows and a key written under 1.1 (sealed format 2) read back after the update.
createdb "$db"
q -d "$db" -c "CREATE EXTENSION sdr_creds VERSION '1.1' CASCADE" >/dev/null 2>&1
check "upgrade: installs version 1.1" [ "$(version "$db")" = 1.1 ]
key=$(q -d "$db" -c "SELECT sdr_creds.create_api_key('${orgs[0]}', 'before 1.2') ->> 'key'")
write_rows
before=$(read_all "$db")
q -d "$db" -c "ALTER EXTENSION sdr_creds UPDATE" >/dev/null
check "upgrade: 1.1 updates to 1.2" [ "$(version "$db")" = 1.2 ]
check "upgrade: 3 rows written under 1.1 read back unchanged at 1.2" \
  [ "$(grep -c made-up-sf <<<"$before")" = 3 -a "$(read_all "$db")" = "$before" ]
check "upgrade: the API key made under 1.1 still authenticates at 1.2" \
  [ "$(q -d "$db" -c "SELECT sdr_creds.authenticate('$key')")" = "${orgs[0]}" ]
dropdb "$db"
exit $((failures > 0))
