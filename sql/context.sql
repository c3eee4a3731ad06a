-- The org context: valid only for the role that established it, undone with
-- the subtransaction that set it, and taken away when a SECURITY DEFINER
-- function that set it under its owner's identity returns.
\set org_a '00000000-0000-4000-8000-00000000000a'
\set org_b '00000000-0000-4000-8000-00000000000b'
SELECT t.new_key(:'org_a') AS key_a, t.new_key(:'org_b') AS key_b \gset
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT created FROM sdr_creds.store('ctx-crm', NULL, 'made-up-ctx-token', '{}');
COMMIT;

-- A trusted service wraps act_as, and a stored key, in SECURITY DEFINER functions.
CREATE SCHEMA svc AUTHORIZATION sdr_service;
GRANT USAGE ON SCHEMA svc TO sdr_app;
SET ROLE sdr_service;
CREATE FUNCTION svc.act_for(org uuid) RETURNS uuid LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog AS $$ SELECT sdr_creds.act_as(org) $$;
CREATE FUNCTION svc.auth_with(key text) RETURNS uuid LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog AS $$ SELECT sdr_creds.authenticate(key) $$;
-- A wrapper that reads inside the call: the context works there.
CREATE FUNCTION svc.token_for(org uuid) RETURNS text LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog AS $$
BEGIN
    PERFORM sdr_creds.act_as(org);
    RETURN sdr_creds.get_by_provider('ctx-crm') ->> 'provider';
END $$;
GRANT EXECUTE ON FUNCTION svc.act_for(uuid), svc.auth_with(text), svc.token_for(uuid) TO sdr_app;
RESET ROLE;

SET ROLE sdr_app;
BEGIN;
SELECT svc.token_for(:'org_a') AS read_inside_wrapper;
SELECT sdr_creds.current_org_id() AS app_context_after_reading_wrapper;
SELECT svc.act_for(:'org_a') = :'org_a' AS wrapper_returned;
SELECT sdr_creds.current_org_id() AS app_context_after_wrapper;
SELECT t.try($$SELECT sdr_creds.get_by_provider('ctx-crm')$$) AS app_get_after_wrapper;
SELECT svc.auth_with(:'key_a') = :'org_a' AS key_wrapper_returned;
SELECT t.try($$SELECT sdr_creds.get_by_provider('ctx-crm')$$) AS app_get_after_key_wrapper;
COMMIT;
RESET ROLE;

-- A wrapper called by its owner runs as its caller: the context stays.
SET ROLE sdr_service;
BEGIN;
SELECT svc.act_for(:'org_a') = :'org_a' AS wrapper_returned;
SELECT sdr_creds.current_org_id() AS service_context_after_its_wrapper;
COMMIT;
RESET ROLE;

-- The context belongs to the role that set it: another role does not inherit it.
BEGIN;
SET LOCAL ROLE sdr_app;
SELECT sdr_creds.authenticate(:'key_a') = :'org_a' AS app_authenticated;
SET LOCAL ROLE sdr_service;
SELECT sdr_creds.current_org_id() AS other_role_context;
SELECT t.try($$SELECT sdr_creds.get_by_provider('ctx-crm')$$) AS other_role_get;
SET LOCAL ROLE sdr_app;
SELECT sdr_creds.current_org_id() = :'org_a' AS back_to_app;
COMMIT;

-- Subtransactions: an aborted one undoes what it set, a released one keeps it.
SET ROLE sdr_service;
BEGIN;
SAVEPOINT s;
SELECT sdr_creds.act_as(:'org_a') = :'org_a' AS set_in_savepoint;
ROLLBACK TO s;
SELECT sdr_creds.current_org_id() AS after_rollback_to;
SAVEPOINT s2;
SELECT sdr_creds.act_as(:'org_a') = :'org_a' AS set_in_savepoint;
RELEASE s2;
SELECT sdr_creds.current_org_id() = :'org_a' AS kept_after_release;
SAVEPOINT s3;
SELECT sdr_creds.act_as(:'org_b') = :'org_b' AS replaced_in_savepoint;
SAVEPOINT s4;
SELECT sdr_creds.act_as(:'org_a') = :'org_a' AS replaced_again;
RELEASE s4;
ROLLBACK TO s3;
SELECT sdr_creds.current_org_id() = :'org_a' AS back_to_a_after_rollback_to;
COMMIT;
SELECT sdr_creds.current_org_id() AS after_commit;
-- An error caught by a plpgsql exception block is a subtransaction abort too.
BEGIN;
SELECT t.try($$SELECT sdr_creds.act_as('00000000-0000-4000-8000-00000000000b'), 1/0$$) AS failed_after_act_as;
SELECT sdr_creds.current_org_id() AS after_caught_error;
COMMIT;
-- Aborted transactions end it too.
BEGIN;
SELECT sdr_creds.act_as(:'org_a') = :'org_a' AS acting;
ROLLBACK;
SELECT sdr_creds.current_org_id() AS after_rollback;
RESET ROLE;

-- NULL and edge arguments answer with clean errors (the catalog-driven test in
-- test/security/arguments.sh calls every function; these are the ones that
-- crashed the server in 1.0).
SET ROLE sdr_app;
SELECT t.try($$SELECT sdr_creds.get_by_provider(NULL)$$) AS get_by_provider_null_no_context;
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') = :'org_a' AS as_a;
SELECT t.try($$SELECT sdr_creds.get_by_provider(NULL)$$) AS get_by_provider_null;
SELECT t.try($$SELECT sdr_creds.get(NULL)$$) AS get_null;
SELECT t.try($$SELECT sdr_creds.delete(NULL)$$) AS delete_null;
SELECT t.try($$SELECT sdr_creds.list(NULL, NULL)$$) AS list_nulls_are_defaults;
SELECT t.try($$SELECT sdr_creds.list(-2147483648, 2147483647)$$) AS list_int_min;
SELECT t.try($$SELECT sdr_creds.store_json(NULL)$$) AS store_json_null;
SELECT t.try($$SELECT sdr_creds.store(NULL, NULL, NULL, NULL)$$) AS store_nulls;
SELECT t.try($$SELECT sdr_creds.authenticate_headers(NULL, NULL)$$) AS headers_nulls;
COMMIT;
SELECT t.try($$SELECT sdr_creds.authenticate(NULL)$$) AS authenticate_null;
RESET ROLE;
SELECT sdr_creds.act_as(NULL) AS act_as_null_is_strict;
SELECT t.try($$SELECT sdr_creds.create_api_key(NULL)$$) AS create_key_null_org;
SELECT t.try($$SELECT sdr_creds.create_api_key('00000000-0000-4000-8000-00000000000a', NULL, 'infinity')$$) AS create_key_infinity;
SELECT t.try($$SELECT sdr_creds.create_api_key('00000000-0000-4000-8000-00000000000a', repeat('n', 201))$$) AS create_key_long_name;
SELECT t.try($$SELECT sdr_creds.create_api_key('00000000-0000-4000-8000-00000000000a', NULL, NULL, NULL) ->> 'prefix' LIKE 'sk_live_%'$$) AS create_key_null_env;
SELECT t.try($$CALL sdr_creds.rotate_all_keys(NULL)$$) AS rotate_all_null;
SELECT * FROM sdr_creds.rotate_keys(NULL);

DROP SCHEMA svc CASCADE;
DELETE FROM sdr_creds.credentials WHERE provider = 'ctx-crm';
