-- Encryption at rest: what reaches the table, nonces, binding of a ciphertext
-- to its row, key versions and rotation.
\set org_a '00000000-0000-4000-8000-00000000000a'
\set org_b '00000000-0000-4000-8000-00000000000b'
SELECT regexp_replace(current_setting('sdr_creds.keyring_file'), '[^/]*$', '') AS kdir \gset
\set v1_keyring :kdir 'v1.keyring'

BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT created FROM sdr_creds.store('salesforce', 'https://acme.my.salesforce.com',
    'MARKER-access-7f3a9c', '{"instance_url": "https://acme.my.salesforce.com",
      "refresh_token": "MARKER-refresh-2b8d", "token_type": "Bearer"}');
SELECT created FROM sdr_creds.store('hubspot', NULL, 'MARKER-hubspot-1d2e', '{"portal_id": "42"}');
COMMIT;

-- The table holds no plaintext secret, and no secret metadata key.
SELECT provider,
       position(convert_to('MARKER', 'UTF8') IN secrets) = 0 AS no_plaintext,
       metadata,
       key_version,
       length(secrets) - octet_length('MARKER-access-7f3a9c') AS overhead_etc
  FROM sdr_creds.credentials WHERE provider = 'salesforce';
SELECT count(*) AS rows_with_marker
  FROM sdr_creds.credentials
 WHERE position(convert_to('MARKER', 'UTF8') IN secrets) > 0
    OR metadata::text LIKE '%MARKER%' OR dsn LIKE '%MARKER%';

-- Round trip.
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT sdr_creds.get_by_provider('salesforce') -> 'access_token' AS access_token,
       sdr_creds.get_by_provider('salesforce') -> 'metadata' AS metadata;
COMMIT;

-- A fresh nonce on every write: the same secrets seal differently.
SELECT secrets AS before FROM sdr_creds.credentials WHERE provider = 'hubspot' \gset
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT created FROM sdr_creds.store('hubspot', NULL, 'MARKER-hubspot-1d2e', '{"portal_id": "42"}');
COMMIT;
SELECT secrets <> :'before'::bytea AS resealed,
       substr(secrets, 1, 24) <> substr(:'before'::bytea, 1, 24) AS new_nonce
  FROM sdr_creds.credentials WHERE provider = 'hubspot';

-- A ciphertext copied to another row, org, provider or key version fails to open.
CREATE TEMP TABLE saved AS SELECT * FROM sdr_creds.credentials;
UPDATE sdr_creds.credentials c SET secrets = s.secrets
  FROM saved s WHERE s.provider = 'salesforce' AND c.provider = 'hubspot';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('hubspot')$$) AS copied_to_other_row;
SELECT t.try($$SELECT sdr_creds.list()$$) AS list_with_copied_row;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS original_still_opens;
COMMIT;
UPDATE sdr_creds.credentials c SET secrets = s.secrets FROM saved s WHERE s.id = c.id;

UPDATE sdr_creds.credentials SET org_id = :'org_b' WHERE provider = 'salesforce';
BEGIN;
SELECT sdr_creds.act_as(:'org_b') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS moved_to_other_org;
COMMIT;
UPDATE sdr_creds.credentials SET org_id = :'org_a' WHERE provider = 'salesforce';

UPDATE sdr_creds.credentials SET provider = 'salesforce2' WHERE provider = 'salesforce';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce2')$$) AS renamed_provider;
COMMIT;
UPDATE sdr_creds.credentials SET provider = 'salesforce' WHERE provider = 'salesforce2';

UPDATE sdr_creds.credentials SET key_version = 1 WHERE provider = 'salesforce';
UPDATE sdr_creds.credentials SET key_version = 7 WHERE provider = 'hubspot';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS other_key_version;
SELECT t.try($$SELECT sdr_creds.get_by_provider('hubspot')$$) AS unknown_key_version;
ROLLBACK;
UPDATE sdr_creds.credentials SET key_version = 2;

-- A flipped byte (tampering) is detected.
UPDATE sdr_creds.credentials
   SET secrets = set_byte(secrets, 30, get_byte(secrets, 30) # 1) WHERE provider = 'salesforce';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS tampered;
COMMIT;
UPDATE sdr_creds.credentials c SET secrets = s.secrets FROM saved s WHERE s.id = c.id;

-- Tampering with what is stored in the clear: a changed dsn or plain metadata
-- (instance_url pointed at another host) makes the row fail to open, so no
-- client is sent a valid token for a host an attacker chose.
SELECT seal_format FROM sdr_creds.credentials WHERE provider = 'salesforce';
UPDATE sdr_creds.credentials SET dsn = 'https://attacker.example' WHERE provider = 'salesforce';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS dsn_changed;
COMMIT;
UPDATE sdr_creds.credentials SET dsn = NULL WHERE provider = 'salesforce';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS dsn_removed;
COMMIT;
UPDATE sdr_creds.credentials SET dsn = 'https://acme.my.salesforce.com',
       metadata = jsonb_set(metadata, '{instance_url}', '"https://attacker.example"')
 WHERE provider = 'salesforce';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('salesforce')$$) AS instance_url_changed;
SELECT t.try($$SELECT sdr_creds.list()$$) AS list_with_changed_row;
COMMIT;
UPDATE sdr_creds.credentials SET metadata = metadata || '{"api_version": "v1"}' WHERE provider = 'hubspot';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT t.try($$SELECT sdr_creds.get_by_provider('hubspot')$$) AS plain_key_added;
COMMIT;
-- Put back as they were, the rows open again.
UPDATE sdr_creds.credentials c SET dsn = s.dsn, metadata = s.metadata FROM saved s WHERE s.id = c.id;
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT sdr_creds.get_by_provider('salesforce') ->> 'dsn' AS restored_dsn,
       sdr_creds.get_by_provider('hubspot') -> 'metadata' AS restored_metadata;
COMMIT;

-- Key versions: the newest key encrypts, older ones still decrypt, rotation
-- re-encrypts under the newest in batches and reads keep working.
SET sdr_creds.keyring_file TO :'v1_keyring';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT created FROM sdr_creds.store('pipedrive', NULL, 'MARKER-pipedrive-55aa', '{}');
SELECT created FROM sdr_creds.store('zoho', NULL, 'MARKER-zoho-66bb', '{"api_key": "MARKER-zoho-key"}');
COMMIT;
RESET sdr_creds.keyring_file;
SELECT provider, key_version FROM sdr_creds.credentials ORDER BY provider;
SELECT version FROM sdr_creds.key_versions ORDER BY version;
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT sdr_creds.get_by_provider('zoho') -> 'access_token' AS old_key_still_decrypts;
COMMIT;
SELECT * FROM sdr_creds.rotate_keys(1);
SELECT * FROM sdr_creds.rotate_keys(10);
SELECT * FROM sdr_creds.rotate_keys(10);
SELECT provider, key_version FROM sdr_creds.credentials ORDER BY provider;
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT sdr_creds.get_by_provider('zoho') -> 'access_token' AS after_rotation,
       sdr_creds.get_by_provider('zoho') -> 'metadata' AS metadata;
COMMIT;
SELECT t.try('SELECT sdr_creds.rotate_keys(0)') AS zero_batch;
-- rotate_all_keys commits after each batch (so it can resume after a stop).
UPDATE sdr_creds.credentials c SET secrets = s.secrets, key_version = s.key_version
  FROM saved s WHERE s.id = c.id;
SET sdr_creds.keyring_file TO :'v1_keyring';
BEGIN;
SELECT sdr_creds.act_as(:'org_a') IS NOT NULL AS acting;
SELECT created FROM sdr_creds.store('pipedrive', NULL, 'MARKER-pipedrive-77cc', '{}');
SELECT created FROM sdr_creds.store('zoho', NULL, 'MARKER-zoho-88dd', '{}');
COMMIT;
RESET sdr_creds.keyring_file;
CALL sdr_creds.rotate_all_keys(1);
SELECT key_version, count(*) FROM sdr_creds.credentials GROUP BY 1;
UPDATE sdr_creds.credentials SET secrets = s.secrets, key_version = s.key_version
  FROM saved s WHERE s.id = credentials.id;
SELECT count(*) AS rows_with_marker
  FROM sdr_creds.credentials
 WHERE position(convert_to('MARKER', 'UTF8') IN secrets) > 0 OR metadata::text LIKE '%MARKER%';
DELETE FROM sdr_creds.credentials;
