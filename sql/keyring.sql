-- The keyring: missing, unreadable, malformed, too open or wrong keyrings give
-- clear errors that quote no key material, and write nothing.
\set org_a '00000000-0000-4000-8000-00000000000a'
SELECT regexp_replace(current_setting('sdr_creds.keyring_file'), '[^/]*$', '') AS kdir \gset
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT created FROM sdr_creds.store('salesforce', NULL, 'made-up-original', '{"refresh_token": "made-up-original-refresh"}');
COMMIT;
SELECT secrets AS sealed_before, key_version AS version_before FROM sdr_creds.credentials \gset

CREATE FUNCTION t.with_keyring(keyring text, stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  result text;
BEGIN
  PERFORM set_config('sdr_creds.keyring_file', keyring, true);
  PERFORM sdr_creds.act_as('00000000-0000-4000-8000-00000000000a');
  result := t.try(stmt);
  RETURN replace(result, regexp_replace(keyring, '[^/]*$', ''), '<dir>/');
END $$;

SELECT t.with_keyring(k, s) AS result, k = '' AS unset, substring(k FROM '[^/]*$') AS keyring, left(s, 32) AS stmt
  FROM (VALUES (''), (:'kdir' || 'missing.keyring'), (:'kdir' || 'open.keyring'),
               (:'kdir' || 'malformed.keyring'), (:'kdir'), (:'kdir' || 'wrong.keyring')) AS k(k),
       (VALUES ($$SELECT sdr_creds.get_by_provider('salesforce')$$),
               ($$SELECT sdr_creds.store('salesforce', NULL, 'made-up-overwrite', '{}')$$),
               ($$SELECT sdr_creds.store('hubspot', NULL, 'made-up-new', '{}')$$),
               ($$SELECT sdr_creds.rotate_keys()$$)) AS s(s)
 ORDER BY 2 DESC, 3, 4;

-- Nothing was written or overwritten.
SELECT count(*) AS rows, bool_and(secrets = :'sealed_before'::bytea) AS unchanged,
       bool_and(key_version = :'version_before') AS same_version
  FROM sdr_creds.credentials;
-- And with the right keyring everything reads as before.
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT sdr_creds.get_by_provider('salesforce') ->> 'access_token' AS access_token;
COMMIT;
DELETE FROM sdr_creds.credentials;
