-- Tenant isolation: org B never reads, lists, changes or deletes org A's
-- credentials, through the API or by direct SELECT; the org context cannot be
-- forged with SET or set_config.
\set org_a '00000000-0000-4000-8000-00000000000a'
\set org_b '00000000-0000-4000-8000-00000000000b'
SELECT t.new_key(:'org_a') AS key_a, t.new_key(:'org_b') AS key_b \gset
SET ROLE sdr_app;
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') = :'org_a' AS as_a;
SELECT credential ->> 'id' AS a_id FROM sdr_creds.store('salesforce', NULL, 'made-up-a-token', '{"refresh_token": "made-up-a-refresh"}') \gset
COMMIT;

BEGIN;
SELECT sdr_creds.authenticate(:'key_b') = :'org_b' AS as_b;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS b_by_provider;
SELECT t.try(format('SELECT sdr_creds.get(%L)', :'a_id')) AS b_get_a;
SELECT t.try(format('SELECT sdr_creds.delete(%L)', :'a_id')) AS b_delete_a;
SELECT sdr_creds.list() AS b_list;
-- B's own salesforce credential is a different row.
SELECT created, credential ->> 'id' <> :'a_id' AS other_row
  FROM sdr_creds.store('salesforce', NULL, 'made-up-b-token', '{}');
SELECT sdr_creds.get_by_provider('salesforce') ->> 'access_token' AS b_sees_own;
SELECT json_array_length(sdr_creds.list()) AS b_list_count;
COMMIT;

-- The same through PostgREST's request.headers.
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', :'key_b')::text, true) IS NOT NULL AS b_headers;
SELECT t.try(format('SELECT sdr_creds.get(%L)', :'a_id')) AS b_get_a_via_postgrest;
SELECT t.try(format('SELECT sdr_creds.delete(%L)', :'a_id')) AS b_delete_a_via_postgrest;
SELECT json_array_length(sdr_creds.list()) AS b_list_via_postgrest;
COMMIT;

BEGIN;
SELECT sdr_creds.authenticate(:'key_a') = :'org_a' AS as_a;
SELECT sdr_creds.get(:'a_id') ->> 'access_token' AS a_untouched;
SELECT json_array_length(sdr_creds.list()) AS a_list_count;
COMMIT;
RESET ROLE;
SELECT org_id, provider FROM sdr_creds.credentials ORDER BY org_id;

-- Direct access (a role granted SELECT etc.): row-level security keys every
-- row to the org context. With none, nothing is visible.
SET ROLE sdr_reporter;
SELECT count(*) AS no_context_rows FROM sdr_creds.credentials;
SELECT count(*) AS no_context_keys FROM sdr_creds.api_keys;
BEGIN;
SELECT sdr_creds.authenticate(:'key_b') = :'org_b' AS as_b;
SELECT org_id, provider FROM sdr_creds.credentials;
SELECT count(*) AS b_keys_only FROM sdr_creds.api_keys WHERE org_id <> :'org_b';
WITH u AS (UPDATE sdr_creds.credentials SET dsn = 'https://changed.example' WHERE id = :'a_id' RETURNING 1)
SELECT count(*) AS a_rows_updated FROM u;
WITH d AS (DELETE FROM sdr_creds.credentials WHERE id = :'a_id' RETURNING 1)
SELECT count(*) AS a_rows_deleted FROM d;
SELECT t.try(format($$INSERT INTO sdr_creds.credentials VALUES (gen_random_uuid(), %L, 'x', NULL, '{}', '\x00', 1, now(), now())$$, :'org_a')) AS insert_as_a;
WITH m AS (UPDATE sdr_creds.credentials SET org_id = :'org_a' RETURNING 1)
SELECT count(*) AS b_rows_moved_to_a FROM m;
-- Direct table access reads its org's rows and writes nothing, not even its own.
WITH u AS (UPDATE sdr_creds.credentials SET dsn = 'https://changed.example' WHERE org_id = :'org_b' RETURNING 1)
SELECT count(*) AS b_own_rows_updated FROM u;
ROLLBACK;
RESET ROLE;
SELECT count(*) AS a_row_intact FROM sdr_creds.credentials WHERE id = :'a_id' AND dsn IS NULL;

-- Forging the context: settings are not the context.
SET ROLE sdr_app;
SELECT t.try(format($$SELECT set_config('sdr_creds.org_id', %L, false)$$, :'org_a')) AS set_config_reserved_prefix;
SELECT t.try(format($$SET sdr_creds.org_id = %L$$, :'org_a')) AS set_reserved_prefix;
SELECT t.try(format($$SELECT set_config('app.org_id', %L, false), set_config('request.jwt.claim.org_id', %L, false), sdr_creds.list()$$, :'org_a', :'org_a')) AS other_settings;
SELECT sdr_creds.current_org_id() IS NULL AS still_no_context;
SELECT t.try($$SET sdr_creds.keyring_file = '/tmp/evil.keyring'$$) AS set_keyring;
SELECT t.try($$SET sdr_creds.jwt_secret = 'attacker-chosen-secret-0123456789abcdef'$$) AS set_jwt_secret;
SELECT t.try($$SHOW sdr_creds.jwt_secret$$) AS show_jwt_secret;
SELECT t.try(format('SELECT sdr_creds.act_as(%L)', :'org_a')) AS app_act_as;
RESET ROLE;

-- The trusted-service right (EXECUTE on act_as) is the only other way in.
SET ROLE sdr_service;
BEGIN;
SELECT sdr_creds.act_as(:'org_a') = :'org_a' AS acting_for_a;
SELECT sdr_creds.get_by_provider('salesforce') ->> 'access_token' AS service_reads_a;
COMMIT;
SELECT sdr_creds.current_org_id() IS NULL AS ends_with_transaction;
RESET ROLE;

-- A hostile search_path cannot redirect the API's statements: an "="
-- operator that always says true, searched before pg_catalog, changes nothing.
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT created FROM sdr_creds.store('zoho', NULL, 'made-up-a-zoho', '{}');
COMMIT;
CREATE SCHEMA evil AUTHORIZATION sdr_app;
SET ROLE sdr_app;
CREATE FUNCTION evil.always(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.always);
CREATE FUNCTION evil.always(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.always);
SET search_path = evil, pg_catalog, public;
SELECT '00000000-0000-4000-8000-00000000000a'::uuid = '00000000-0000-4000-8000-00000000000b'::uuid AS hijacked_here;
BEGIN;
SELECT sdr_creds.authenticate(:'key_b')::text AS as_b;
SELECT t.try($$SELECT sdr_creds.get_by_provider('zoho')$$) AS b_by_provider_with_hostile_path;
SELECT json_array_length(sdr_creds.list()) AS b_list_count;
SELECT t.try(format('SELECT sdr_creds.delete(%L)', :'a_id')) AS b_delete_a;
COMMIT;
RESET search_path;
RESET ROLE;
DROP SCHEMA evil CASCADE;
DELETE FROM sdr_creds.credentials;
