-- make demo: the extension, an application role, a demo org with an API key,
-- Salesforce and HubSpot credentials, and reading them back.
\set QUIET on
\set ON_ERROR_STOP on
CREATE EXTENSION sdr_creds CASCADE;

-- The application role, with the README's GRANTs.
CREATE ROLE sdr_demo_app LOGIN;
GRANT USAGE ON SCHEMA sdr_creds TO sdr_demo_app;
GRANT EXECUTE ON FUNCTION
    sdr_creds.authenticate(text), sdr_creds.authenticate_headers(text, text),
    sdr_creds.authenticate_headers(text, text, text),  -- the HTTP server passes the client address
    sdr_creds.authenticate_request(), sdr_creds.current_org_id(),
    sdr_creds.store(text, text, text, jsonb), sdr_creds.store_json(text),
    sdr_creds.get_by_provider(text), sdr_creds.get(uuid),
    sdr_creds.list(integer, integer), sdr_creds.delete(uuid)
  TO sdr_demo_app;

\set org '123e4567-e89b-12d3-a456-426614174000'
SELECT sdr_creds.create_api_key(:'org', 'demo') ->> 'key' AS api_key \gset
\o :keyfile
\qecho -n :api_key
\o
\pset format unaligned
\pset tuples_only on

\echo
\echo '== As the application role, with the demo API key: store two credentials'
SET ROLE sdr_demo_app;
BEGIN;
SELECT 'authenticated as org ' || sdr_creds.authenticate(:'api_key');
SELECT CASE WHEN created THEN 'created: ' ELSE 'replaced: ' END || credential FROM sdr_creds.store('salesforce', 'https://demo.my.salesforce.com',
    '00D5g000001234567!AQYAQ.demo-access-token',
    '{"instance_url": "https://demo.my.salesforce.com", "api_version": "v58.0",
      "refresh_token": "5Aep861.demo-refresh-token", "token_type": "Bearer"}');
SELECT CASE WHEN created THEN 'created: ' ELSE 'replaced: ' END || credential FROM sdr_creds.store('hubspot', 'https://api.hubapi.com',
    'pat-na1-demo-access-token', '{"portal_id": "8675309", "refresh_token": "demo-hubspot-refresh"}');
COMMIT;

\echo '== Read back by provider (the whole object)'
BEGIN;
SELECT FROM sdr_creds.authenticate(:'api_key');
SELECT sdr_creds.get_by_provider('salesforce');
\echo '== List (newest first; secret metadata such as refresh_token omitted)'
SELECT json_array_elements(sdr_creds.list()) AS credential;
COMMIT;
RESET ROLE;

\echo '== What the table holds: plain metadata and sealed secrets only'
\pset format aligned
\pset tuples_only off
SELECT provider, metadata, key_version, length(secrets) AS sealed_bytes FROM sdr_creds.credentials ORDER BY provider;
