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
