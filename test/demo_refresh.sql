-- make demo, token refresh: the refresher's role and its GRANTs, an OAuth
-- client for hubspot (url: the local mock provider), and a credential whose
-- access token expires in two minutes.
\set ON_ERROR_STOP on
CREATE ROLE sdr_demo_refresher LOGIN;
GRANT USAGE ON SCHEMA sdr_creds TO sdr_demo_refresher;
GRANT EXECUTE ON FUNCTION sdr_creds.refresh_claim(integer, integer),
    sdr_creds.refresh_record(uuid, integer, bytea, integer, text) TO sdr_demo_refresher;
GRANT EXECUTE ON FUNCTION sdr_creds.set_oauth_client(text, text, text, text, text, text),
    sdr_creds.list_oauth_clients(), sdr_creds.delete_oauth_client(text),
    sdr_creds.request_refresh(uuid) TO sdr_demo_app;

SET ROLE sdr_demo_app;
BEGIN;
SELECT FROM sdr_creds.authenticate(:'key');
SELECT '  client: ' || sdr_creds.set_oauth_client('hubspot', :'url', 'mock-client', 'demo-client-secret',
                                                  'client_secret_basic', 'crm.objects.contacts.read');
SELECT '  before: access_token=' || (credential ->> 'access_token') || ' expires_at='
       || (credential -> 'metadata' ->> 'expires_at')
  FROM sdr_creds.store('hubspot', 'https://api.hubapi.com', 'pat-na1-demo-access-token',
                       '{"portal_id": "8675309", "refresh_token": "seed-demo-hubspot", "expires_in": 120}');
COMMIT;
RESET ROLE;
