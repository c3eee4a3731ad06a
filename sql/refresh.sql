-- Token refresh, database side: a credential's expiry at store(), OAuth
-- clients (validation, the secret never returned, bound to its token URL),
-- and refresh_record() classifying the token endpoint's answers.
\set org '00000000-0000-4000-8000-0000000000f1'
SELECT sdr_creds.act_as(:'org') IS NOT NULL AS acting;

-- Expiry: expires_in (seconds, a number or numeric string) becomes plain
-- metadata.expires_at (RFC 3339, UTC) and the expires_at column;
-- expires_at is normalised; refresh_status is dropped (a store re-authorizes).
BEGIN;
SELECT sdr_creds.act_as(:'org') IS NOT NULL AS acting;
SELECT abs(extract(epoch FROM (credential -> 'metadata' ->> 'expires_at')::timestamptz - now()) - 1800) < 2
         AS expires_in_1800,
       credential::jsonb -> 'metadata' ? 'expires_in' AS kept_expires_in,
       credential::jsonb -> 'metadata' ? 'refresh_status' AS kept_refresh_status
  FROM sdr_creds.store('hubspot', NULL, 'made-up-at',
                       '{"expires_in": "1800", "refresh_token": "made-up-rt", "refresh_status": "needs_reauthorization"}');
SELECT credential -> 'metadata' ->> 'expires_at' AS expires_at
  FROM sdr_creds.store('zoho', NULL, 'made-up-at', '{"expires_at": "2030-01-02 03:04:05+02"}');
SELECT credential -> 'metadata' ->> 'expires_at' AS expires_at
  FROM sdr_creds.store('zoho', NULL, 'made-up-at', '{"expires_at": 1893456000}');
SELECT t.try(format($$SELECT sdr_creds.store('zoho', NULL, 'made-up-at', %L)$$, m)) AS bad_expiry
  FROM (VALUES ('{"expires_in": -1}'), ('{"expires_in": "soon"}'), ('{"expires_in": 1e300}'),
               ('{"expires_at": "infinity"}'), ('{"expires_at": "yesterday-ish"}'), ('{"expires_at": true}')) v(m);
COMMIT;
SELECT provider, CASE provider WHEN 'hubspot' THEN (expires_at - updated_at)::text
                 ELSE to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS expires,
       refreshable
  FROM sdr_creds.credentials WHERE org_id = :'org' ORDER BY provider;

-- OAuth clients: https, or http to loopback; the secret is never shown.
BEGIN;
SELECT sdr_creds.act_as(:'org') IS NOT NULL AS acting;
SELECT j - 'id' - 'org_id' - 'created_at' - 'updated_at' AS client
  FROM sdr_creds.set_oauth_client('hubspot', 'https://api.hubapi.example/oauth/v1/token', 'made-up-client',
                                  'made-up-client-secret', 'client_secret_post', 'crm.objects.read') AS c,
       LATERAL (SELECT c::jsonb AS j) x;
SELECT t.try(format('SELECT sdr_creds.set_oauth_client(%s)', a)) AS bad_client
  FROM (VALUES ($$'hubspot', 'http://api.hubapi.example/token', 'id', 'secret'$$),
               ($$'hubspot', 'ftp://x/token', 'id', 'secret'$$),
               ($$'hubspot', 'https://', 'id', 'secret'$$),
               ($$'hubspot', 'https://x/ token', 'id', 'secret'$$),
               ($$'hubspot', 'http://127.0.0.1.evil.example/token', 'id', 'secret'$$),
               ($$'hubspot', 'https://x/token', '', 'secret'$$),
               ($$'hubspot', 'https://x/token', 'id', NULL$$),
               ($$'hubspot', 'https://x/token', 'id', 'secret', 'private_key_jwt'$$),
               ($$'Not a provider', 'https://x/token', 'id', 'secret'$$)) v(a);
SELECT json_array_length(sdr_creds.list_oauth_clients()) AS clients,
       sdr_creds.list_oauth_clients()::text LIKE '%made-up-client-secret%' AS secret_listed;
-- sdr_creds.outbound_hosts (superuser): token URLs only to these hosts; empty: any.
SET LOCAL sdr_creds.outbound_hosts = '*.salesforce.com, api.hubapi.example';
SELECT u AS token_url, t.try(format('SELECT sdr_creds.set_oauth_client(%L, %L, %L, %L)', 'zoho', u, 'id', 'secret'))
         AS outbound_hosts
  FROM (VALUES ('https://api.hubapi.example/oauth/v1/token'), ('https://API.HubAPI.example:443/token'),
               ('https://login.salesforce.com/services/oauth2/token'), ('https://a.b.salesforce.com/token'),
               ('https://salesforce.com/token'), ('https://evilsalesforce.com/token'),
               ('https://api.hubapi.example.evil.example/token'), ('https://10.0.0.1/token'),
               ('https://api.hubapi.example@10.0.0.1/token'), ('https://login%2esalesforce.com/token'),
               ('https://[::1]/token'), ('http://127.0.0.1:8080/token')) v(u);
SET LOCAL sdr_creds.outbound_hosts = '';
SELECT t.try($$SELECT sdr_creds.set_oauth_client('zoho', 'https://accounts.zoho.example/token', 'id', 'secret')$$)
         AS outbound_hosts_empty;
SELECT sdr_creds.delete_oauth_client('zoho') AS deleted;
COMMIT;
SELECT position(convert_to('made-up-client-secret', 'UTF8') IN secret) AS plaintext_at,
       length(secret) > 40 AS sealed FROM sdr_creds.oauth_clients WHERE org_id = :'org';

-- refresh_claim needs a transaction block; refresh_record a claim of this transaction.
SELECT * FROM sdr_creds.refresh_claim();
SELECT regexp_replace(t.try(format('SELECT sdr_creds.refresh_record(%L, 200, NULL)', id)), '[0-9a-f-]{36}', '<id>') AS unclaimed
  FROM sdr_creds.credentials WHERE org_id = :'org' AND provider = 'hubspot';

-- Each answer, on a fresh claim (the first failure: a wait of 15 to 30 s, or
-- Retry-After): what it means and what is stored.
CREATE FUNCTION pg_temp.answer(status integer, body text, retry_after integer DEFAULT NULL, error text DEFAULT NULL)
RETURNS TABLE (outcome text, rotated boolean, refresh_error text, waits text, failures integer,
               refreshable boolean, status_in_metadata text) LANGUAGE plpgsql AS $$
DECLARE cid uuid; r record;
BEGIN
  UPDATE sdr_creds.credentials SET refresh_retry_at = NULL, refresh_failures = 0, refreshable = true,
         expires_at = now()
   WHERE org_id = '00000000-0000-4000-8000-0000000000f1' AND provider = 'hubspot';
  SELECT credential_id INTO cid FROM sdr_creds.refresh_claim(300, 1);
  SELECT * INTO r FROM sdr_creds.refresh_record(cid, status, convert_to(body, 'UTF8'), retry_after, error);
  RETURN QUERY SELECT r.outcome, r.rotated, r.refresh_error,
                      CASE WHEN r.retry_at IS NULL THEN '-' WHEN r.retry_at >= now() + interval '119 s' THEN '>= 119 s'
                           ELSE '< 119 s' END, c.refresh_failures, c.refreshable, c.metadata ->> 'refresh_status'
    FROM sdr_creds.credentials c WHERE c.id = cid;
END $$;
BEGIN;
SELECT 'ok, rotated' AS answer, * FROM pg_temp.answer(200, '{"access_token": "made-up-at-2", "refresh_token": "made-up-rt-2", "expires_in": 3600}');
SELECT 'ok, not rotated' AS answer, * FROM pg_temp.answer(200, '{"access_token": "made-up-at-3", "expires_in": "60"}');
SELECT '500' AS answer, * FROM pg_temp.answer(500, '{"error": "server_error"}');
SELECT '429' AS answer, * FROM pg_temp.answer(429, '', 120);
SELECT 'no access_token' AS answer, * FROM pg_temp.answer(200, '{"token_type": "Bearer"}');
SELECT 'not JSON' AS answer, * FROM pg_temp.answer(200, '<html>');
SELECT 'an array' AS answer, * FROM pg_temp.answer(200, '[{"access_token": "x"}]');
SELECT 'bad expires_in' AS answer, * FROM pg_temp.answer(200, '{"access_token": "x", "expires_in": "soon"}');
SELECT 'invalid_client' AS answer, * FROM pg_temp.answer(401, '{"error": "invalid_client"}');
SELECT 'timeout' AS answer, * FROM pg_temp.answer(NULL, NULL, NULL, 'timeout');
SELECT 'odd error code' AS answer, * FROM pg_temp.answer(NULL, NULL, NULL, 'Bad Thing!');
SELECT 'invalid_grant' AS answer, * FROM pg_temp.answer(400, '{"error": "invalid_grant"}');
COMMIT;
BEGIN;
SELECT sdr_creds.act_as(:'org') IS NOT NULL AS acting;
SELECT j ->> 'access_token' AS access_token, j -> 'metadata' ->> 'refresh_token' AS refresh_token,
       j -> 'metadata' ->> 'refresh_status' AS refresh_status,
       array(SELECT json_object_keys(j)) AS fields
  FROM sdr_creds.get_by_provider('hubspot') j;
SELECT regexp_replace(t.try(format('SELECT sdr_creds.request_refresh(%L)', id)), '[0-9a-f-]{36}', '<id>')
         AS request_after_invalid_grant
  FROM sdr_creds.credentials WHERE org_id = :'org' AND provider = 'hubspot';
COMMIT;
