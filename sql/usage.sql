-- Usage statistics in shared memory: sdr_creds.usage, sdr_creds.auth_failures,
-- usage_reset(), and list_api_keys()'s last use. Timestamps, ids and key
-- prefixes vary from run to run: the queries show counts, actions and kinds.
\set org_a '00000000-0000-4000-8000-0000000000e1'
\set org_b '00000000-0000-4000-8000-0000000000e2'
SELECT sdr_creds.usage_reset();
SELECT count(*) AS usage_rows FROM sdr_creds.usage;
SELECT count(*) AS auth_failure_rows FROM sdr_creds.auth_failures;

-- The application may read the views (the C functions decide which rows).
GRANT SELECT ON sdr_creds.usage, sdr_creds.auth_failures TO sdr_app;
GRANT EXECUTE ON FUNCTION sdr_creds.usage_entries(), sdr_creds.auth_failure_entries() TO sdr_app;

-- Keys: one used, one never used, one revoked, one expired.
SELECT t.new_key(:'org_a') AS used_key \gset
SELECT t.new_key(:'org_a') AS unused_key \gset
SELECT t.new_key(:'org_a') AS revoked_key \gset
SELECT t.new_key(:'org_a') AS expired_key \gset
SELECT id AS used_id FROM sdr_creds.api_keys WHERE key_hash = sha256(convert_to(:'used_key', 'UTF8')) \gset
SELECT id AS unused_id FROM sdr_creds.api_keys WHERE key_hash = sha256(convert_to(:'unused_key', 'UTF8')) \gset
SELECT id AS revoked_id, prefix AS revoked_prefix FROM sdr_creds.api_keys WHERE key_hash = sha256(convert_to(:'revoked_key', 'UTF8')) \gset
SELECT id AS expired_id, prefix AS expired_prefix FROM sdr_creds.api_keys WHERE key_hash = sha256(convert_to(:'expired_key', 'UTF8')) \gset
SELECT sdr_creds.revoke_api_key(:'revoked_id');
UPDATE sdr_creds.api_keys SET expires_at = now() - interval '1 second' WHERE id = :'expired_id';

-- Calls with the used key: authenticate, store, get_by_provider (found, then
-- 404), list; then a GET inside a READ ONLY transaction.
SET ROLE sdr_app;
BEGIN;
SELECT sdr_creds.authenticate(:'used_key') = :'org_a' AS authenticated;
SELECT (sdr_creds.store('usage_crm', NULL, 'made-up-usage-token', '{}')) IS NOT NULL AS stored;
SELECT sdr_creds.get_by_provider('usage_crm') IS NOT NULL AS found;
SELECT t.try($$SELECT sdr_creds.get_by_provider('usage_absent')$$) AS not_found;
SELECT json_array_length(sdr_creds.list()) AS listed;
COMMIT;
BEGIN READ ONLY;
SELECT sdr_creds.authenticate(:'used_key') = :'org_a' AS authenticated;
SELECT sdr_creds.get_by_provider('usage_crm') IS NOT NULL AS found_read_only;
COMMIT;

-- Failed authentications: an unknown key, the revoked and the expired key, a bad JWT.
SELECT t.try($$SELECT sdr_creds.authenticate('sk_live_madeUpUnknownKeyMadeUpUnknownKeyMadeUpUnk')$$) AS unknown_key;
SELECT t.try(format('SELECT sdr_creds.authenticate(%L)', :'revoked_key')) AS revoked_key;
SELECT t.try(format('SELECT sdr_creds.authenticate(%L)', :'expired_key')) AS expired_key;
SELECT t.try($$SELECT sdr_creds.authenticate('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bad-signature')$$) AS bad_jwt;

-- Not authenticated, the application sees no statistics.
SELECT count(*) AS app_usage_rows FROM sdr_creds.usage;
SELECT count(*) AS app_auth_failure_rows FROM sdr_creds.auth_failures;
RESET ROLE;

-- A trusted service acting for another org: list, then get of an unknown id (404).
SET ROLE sdr_service;
BEGIN;
SELECT sdr_creds.act_as(:'org_b') = :'org_b' AS acting;
SELECT json_array_length(sdr_creds.list()) AS listed;
SELECT t.try($$SELECT sdr_creds.get('00000000-0000-4000-8000-00000000dead')$$) AS not_found;
COMMIT;
RESET ROLE;

-- The superuser sees every row, with exact counts.
SELECT org_id = :'org_a' AS org_a, action, calls, failures, last_client,
       first_at <= last_at AS ordered
  FROM sdr_creds.usage WHERE principal = 'key:' || :'used_id'
 ORDER BY action;
SELECT org_id = :'org_b' AS org_b, principal, action, calls, failures, last_client
  FROM sdr_creds.usage WHERE principal = 'service:sdr_service' AND action <> 'authenticate'
 ORDER BY action;
-- (an unknown key counts under its presented display prefix, or 'unknown')
SELECT CASE key_prefix WHEN :'revoked_prefix' THEN 'revoked key prefix'
                       WHEN :'expired_prefix' THEN 'expired key prefix'
                       WHEN 'sk_live_made' THEN 'unknown key prefix'
                       WHEN 'unknown' THEN 'unknown key prefix'
                       ELSE key_prefix END AS key_prefix,
       client, failures, last_reason, last_at IS NOT NULL AS has_last_at
  FROM sdr_creds.auth_failures ORDER BY last_reason;

-- Authenticated, the application sees its own org's rows only, and no failed
-- authentications.
SET ROLE sdr_app;
BEGIN;
SELECT sdr_creds.authenticate(:'used_key') = :'org_a' AS authenticated;
SELECT count(*) > 0 AS sees_rows, bool_and(org_id = :'org_a') AS only_its_org,
       count(*) FILTER (WHERE principal = 'service:sdr_service') AS service_rows
  FROM sdr_creds.usage;
SELECT count(*) AS app_auth_failure_rows FROM sdr_creds.auth_failures;
COMMIT;
-- ... and cannot clear them.
SELECT t.try('SELECT sdr_creds.usage_reset()') AS app_reset;
RESET ROLE;
SELECT calls FROM sdr_creds.usage WHERE principal = 'key:' || :'used_id' AND action = 'authenticate';

-- pg_stat_reset() resets other statistics, not these.
SELECT pg_stat_reset();
SELECT sum(calls) AS key_calls, sum(failures) AS key_failures
  FROM sdr_creds.usage WHERE principal = 'key:' || :'used_id';

-- list_api_keys: the last use of the used key, none for the unused one.
SELECT id = :'used_id' AS used, last_used_at IS NOT NULL AS has_last_used_at, last_used_from
  FROM sdr_creds.list_api_keys(:'org_a') WHERE id IN (:'used_id', :'unused_id')
 ORDER BY used;

-- The new objects are not PUBLIC's.
SELECT has_function_privilege('sdr_nobody', 'sdr_creds.usage_reset()', 'EXECUTE') AS nobody_reset,
       has_function_privilege('sdr_nobody', 'sdr_creds.usage_entries()', 'EXECUTE') AS nobody_entries,
       has_table_privilege('sdr_nobody', 'sdr_creds.usage', 'SELECT') AS nobody_usage,
       has_table_privilege('sdr_nobody', 'sdr_creds.auth_failures', 'SELECT') AS nobody_failures,
       has_function_privilege('sdr_nobody', 'sdr_creds.list_api_keys(uuid)', 'EXECUTE') AS nobody_list_keys;

-- usage_reset() empties both tables.
SELECT sdr_creds.usage_reset();
SELECT (SELECT count(*) FROM sdr_creds.usage) AS usage_rows,
       (SELECT count(*) FROM sdr_creds.auth_failures) AS auth_failure_rows;
REVOKE SELECT ON sdr_creds.usage, sdr_creds.auth_failures FROM sdr_app;
REVOKE EXECUTE ON FUNCTION sdr_creds.usage_entries(), sdr_creds.auth_failure_entries() FROM sdr_app;
