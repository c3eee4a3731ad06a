-- Privileges: nothing is usable by PUBLIC or by a fresh role; SECURITY
-- DEFINER functions pin search_path; RLS is enabled and forced; every
-- function is documented.
SELECT p.oid::regprocedure AS function,
       has_function_privilege('sdr_nobody', p.oid, 'EXECUTE') AS nobody_can_execute,
       p.prosecdef AS security_definer,
       p.proconfig AS settings,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS documented
  FROM pg_proc p WHERE p.pronamespace = 'sdr_creds'::regnamespace ORDER BY p.oid::regprocedure::text;
SELECT c.relname, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
       has_table_privilege('sdr_nobody', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER') AS nobody_any,
       has_table_privilege('sdr_app', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER') AS app_any
  FROM pg_class c WHERE c.relnamespace = 'sdr_creds'::regnamespace AND c.relkind = 'r' ORDER BY 1;
SELECT has_schema_privilege('sdr_nobody', 'sdr_creds', 'USAGE') AS nobody_schema_usage;
SELECT count(*) AS public_grants
  FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE p.pronamespace = 'sdr_creds'::regnamespace AND a.grantee = 0;

SET ROLE sdr_nobody;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS nobody_get;
SELECT t.try($$SELECT * FROM sdr_creds.credentials$$) AS nobody_select;
RESET ROLE;

-- The application role (the README's GRANTs) uses the API and nothing else.
SET ROLE sdr_app;
SELECT t.try($$SELECT * FROM sdr_creds.credentials$$) AS app_select;
SELECT t.try($$SELECT * FROM sdr_creds.api_keys$$) AS app_select_keys;
SELECT t.try($$SELECT * FROM sdr_creds.key_versions$$) AS app_select_key_versions;
SELECT t.try($$SELECT sdr_creds.create_api_key('00000000-0000-4000-8000-00000000000a')$$) AS app_create_key;
SELECT t.try($$SELECT * FROM sdr_creds.list_api_keys()$$) AS app_list_keys;
SELECT t.try($$SELECT sdr_creds.revoke_api_key('00000000-0000-4000-8000-00000000000a')$$) AS app_revoke_key;
SELECT t.try($$SELECT * FROM sdr_creds.rotate_keys()$$) AS app_rotate;
RESET ROLE;

-- Even a role with direct table grants cannot read key fingerprints.
SET ROLE sdr_reporter;
SELECT t.try($$SELECT * FROM sdr_creds.key_versions$$) AS reporter_key_versions;
RESET ROLE;

-- Direct table access never writes: a role holding every table privilege but
-- TRIGGER and TRUNCATE (never grant those), authenticated for its org, cannot
-- create, extend or un-revoke an API key, nor write a credential.
\set org_w '00000000-0000-4000-8000-0000000000f1'
DO $$ BEGIN CREATE ROLE sdr_writer NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT USAGE ON SCHEMA sdr_creds TO sdr_writer;
GRANT SELECT, INSERT, UPDATE, DELETE, REFERENCES ON ALL TABLES IN SCHEMA sdr_creds TO sdr_writer;
GRANT EXECUTE ON FUNCTION sdr_creds.authenticate(text), sdr_creds.current_org_id() TO sdr_writer;
SELECT t.new_key(:'org_w') AS key_w \gset
SELECT sdr_creds.create_api_key(:'org_w', 'revoked') ->> 'id' AS revoked_id \gset
SELECT sdr_creds.revoke_api_key(:'revoked_id') AS revoked;
BEGIN;
SELECT sdr_creds.act_as(:'org_w') IS NOT NULL AS acting;
SELECT created FROM sdr_creds.store('writer-crm', NULL, 'made-up-writer-token', '{}');
COMMIT;
SET ROLE sdr_writer;
BEGIN;
SELECT sdr_creds.authenticate(:'key_w') = :'org_w' AS writer_authenticated;
SELECT count(*) AS writer_sees_own_keys FROM sdr_creds.api_keys;
SELECT t.try(format($$INSERT INTO sdr_creds.api_keys (id, org_id, prefix, key_hash) VALUES (gen_random_uuid(), %L, 'sk_live_xxxx', '\x00')$$, :'org_w')) AS mint_key;
WITH u AS (UPDATE sdr_creds.api_keys SET revoked_at = NULL RETURNING 1) SELECT count(*) AS keys_unrevoked FROM u;
WITH u AS (UPDATE sdr_creds.api_keys SET expires_at = 'infinity' RETURNING 1) SELECT count(*) AS keys_extended FROM u;
WITH d AS (DELETE FROM sdr_creds.api_keys RETURNING 1) SELECT count(*) AS keys_deleted FROM d;
SELECT t.try(format($$INSERT INTO sdr_creds.credentials VALUES (gen_random_uuid(), %L, 'x', NULL, '{}', '\x00', 1, now(), now())$$, :'org_w')) AS insert_credential;
WITH u AS (UPDATE sdr_creds.credentials SET dsn = 'https://attacker.example' RETURNING 1) SELECT count(*) AS credentials_updated FROM u;
WITH d AS (DELETE FROM sdr_creds.credentials RETURNING 1) SELECT count(*) AS credentials_deleted FROM d;
SELECT t.try($$TRUNCATE sdr_creds.api_keys$$) AS truncate_keys;
SELECT t.try($$INSERT INTO sdr_creds.key_versions VALUES (99, '\x00')$$) AS insert_key_version;
COMMIT;
RESET ROLE;
SELECT count(*) FILTER (WHERE revoked_at IS NOT NULL) AS still_revoked, count(*) AS keys
  FROM sdr_creds.api_keys WHERE org_id = :'org_w';
-- The app role's grants do not include these tables at all.
SELECT has_table_privilege('sdr_app', 'sdr_creds.api_keys', 'INSERT') AS app_can_insert_keys;
SELECT polname, polcmd FROM pg_policy WHERE polrelid IN ('sdr_creds.credentials'::regclass, 'sdr_creds.api_keys'::regclass) ORDER BY 1, 2;
DELETE FROM sdr_creds.credentials WHERE provider = 'writer-crm';
