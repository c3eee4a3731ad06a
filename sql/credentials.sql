-- The credential API: store (create / replace), get by provider, get by id,
-- list and delete; the object's shape; validation; errors.
\set org_a '00000000-0000-4000-8000-00000000000a'
SELECT t.new_key(:'org_a') AS key_a \gset
SET ROLE sdr_app;

-- Without authentication every function is PT401.
SELECT t.try(stmt) AS result
  FROM (VALUES
    ($$SELECT sdr_creds.store('salesforce', NULL, 'tok', '{}')$$),
    ($$SELECT sdr_creds.store_json('{}')$$),
    ($$SELECT sdr_creds.get_by_provider('salesforce')$$),
    ($$SELECT sdr_creds.get('6f1c2a4e-9b1d-4c3e-8a55-0d9e4b7c21aa')$$),
    ($$SELECT sdr_creds.list()$$),
    ($$SELECT sdr_creds.delete('6f1c2a4e-9b1d-4c3e-8a55-0d9e4b7c21aa')$$)
  ) AS v(stmt);

-- Store creates, then replaces (same id and created_at, new updated_at).
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') IS NOT NULL AS authenticated;
SELECT created, credential AS first FROM sdr_creds.store('salesforce', 'https://acme.my.salesforce.com',
    '00D5g000001234567!AQYAQ.made-up', '{"instance_url": "https://acme.my.salesforce.com",
      "api_version": "v58.0", "refresh_token": "5Aep861.made-up", "token_type": "Bearer"}') \gset
COMMIT;
SELECT :'created' AS created;
SELECT json_object_keys(:'first'::json) AS field_order;
SELECT :'first'::json ->> 'org_id' AS org_id, :'first'::json ->> 'provider' AS provider,
       :'first'::json ->> 'dsn' AS dsn, :'first'::json ->> 'access_token' AS access_token,
       :'first'::json -> 'metadata' AS metadata,
       :'first'::json ->> 'id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS id_is_v4_uuid,
       :'first'::json ->> 'created_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' AS created_at_rfc3339,
       :'first'::json ->> 'updated_at' = :'first'::json ->> 'created_at' AS updated_equals_created;

SELECT pg_sleep(1.1);
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') IS NOT NULL AS authenticated;
SELECT created, credential AS second FROM sdr_creds.store('salesforce', 'https://acme.my.salesforce.com',
    'made-up-refreshed-access', '{"instance_url": "https://acme.my.salesforce.com",
      "refresh_token": "made-up-new-refresh"}') \gset
COMMIT;
SELECT :'created' AS created,
       :'second'::json ->> 'id' = :'first'::json ->> 'id' AS same_id,
       :'second'::json ->> 'created_at' = :'first'::json ->> 'created_at' AS same_created_at,
       :'second'::json ->> 'updated_at' > :'first'::json ->> 'updated_at' AS updated_later,
       :'second'::json ->> 'access_token' AS access_token,
       :'second'::json -> 'metadata' AS metadata;
RESET ROLE;
SELECT count(*) AS one_row FROM sdr_creds.credentials WHERE provider = 'salesforce';
SET ROLE sdr_app;

BEGIN;
SELECT sdr_creds.authenticate(:'key_a') IS NOT NULL AS authenticated;
-- get_by_provider and get return the whole object, as store did.
SELECT sdr_creds.get_by_provider('salesforce')::text = :'second' AS get_by_provider_matches;
SELECT sdr_creds.get((:'second'::json ->> 'id')::uuid)::text = :'second' AS get_matches;
SELECT t.try($$SELECT sdr_creds.get_by_provider('hubspot')$$) AS missing_provider;
SELECT t.try(format('SELECT sdr_creds.get_by_provider(%L)', p)) AS odd_provider
  FROM (VALUES ('Salesforce'), ('sales force'), ('../etc/passwd'), ('x'' OR ''1''=''1'), ('ünïcode'), ('')) AS v(p);
SELECT t.try($$SELECT sdr_creds.get('6f1c2a4e-9b1d-4c3e-8a55-0d9e4b7c21aa')$$) AS missing_id;
SELECT t.try($$SELECT sdr_creds.get('not-a-uuid')$$) AS malformed_id;

-- Secret metadata: these keys are sealed with the token, never stored plainly.
SELECT created FROM sdr_creds.store('hubspot', NULL, 'made-up-hubspot-token',
    '{"portal_id": 123, "scopes": ["crm.objects.contacts.read"], "token_type": "bearer",
      "refresh_token": "made-up-1", "client_secret": "made-up-2", "id_token": "made-up-3",
      "password": "made-up-4", "private_key": "made-up-5", "webhook_token": "made-up-6",
      "app_secret": "made-up-7", "db_password": "made-up-8", "api_key": "made-up-9",
      "Signing_Key": "made-up-10", "key_count": 2, "tokenizer": "plain"}');
SELECT jsonb_object_keys(sdr_creds.get_by_provider('hubspot')::jsonb -> 'metadata') AS all_metadata_keys ORDER BY 1;
COMMIT;
RESET ROLE;
SELECT jsonb_object_keys(metadata) AS stored_plain_keys FROM sdr_creds.credentials WHERE provider = 'hubspot' ORDER BY 1;
SET ROLE sdr_app;

-- List: newest first, limit/offset, secret metadata omitted, access_token kept.
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') IS NOT NULL AS authenticated;
SELECT created FROM sdr_creds.store('pipedrive', 'https://acme.pipedrive.com', 'made-up-pd', '{"company_id": 7}');
SELECT e ->> 'provider' AS provider, e ->> 'access_token' AS access_token, e -> 'metadata' AS metadata
  FROM json_array_elements(sdr_creds.list()) e;
SELECT json_array_length(sdr_creds.list(2)) AS limit_2,
       sdr_creds.list(1, 1) -> 0 ->> 'provider' AS offset_1,
       json_array_length(sdr_creds.list(10, 3)) AS past_the_end,
       sdr_creds.list(1000)::text = sdr_creds.list()::text AS defaults;
SELECT json_object_keys(sdr_creds.list(1) -> 0) AS list_field_order;
SELECT t.try(format('SELECT sdr_creds.list(%s, %s)', l, o)) AS result
  FROM (VALUES (0, 0), (1001, 0), (-1, 0), (10, -1)) AS v(l, o);
COMMIT;

-- Delete: the message, then not found.
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') IS NOT NULL AS authenticated;
SELECT (sdr_creds.get_by_provider('pipedrive') ->> 'id') AS pd_id \gset
SELECT sdr_creds.delete(:'pd_id')::text = format('{"message": "Integration credentials %s deleted successfully"}', :'pd_id') AS delete_message;
SELECT replace(t.try(format('SELECT sdr_creds.delete(%L)', :'pd_id')), :'pd_id', '<id>') AS deleted_twice;
SELECT replace(t.try(format('SELECT sdr_creds.get(%L)', :'pd_id')), :'pd_id', '<id>') AS get_deleted;
SELECT t.try($$SELECT sdr_creds.get_by_provider('pipedrive')$$) AS get_deleted_by_provider;
COMMIT;

-- Validation: PT422 with a clear message; nothing is written.
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') IS NOT NULL AS authenticated;
SELECT t.try(stmt) AS result
  FROM (VALUES
    ($$SELECT sdr_creds.store('Salesforce', NULL, 'tok', '{}')$$),
    ($$SELECT sdr_creds.store('', NULL, 'tok', '{}')$$),
    ($$SELECT sdr_creds.store(repeat('a', 65), NULL, 'tok', '{}')$$),
    ($$SELECT sdr_creds.store('-leading-dash', NULL, 'tok', '{}')$$),
    ($$SELECT sdr_creds.store('x''; DROP TABLE sdr_creds.credentials; --', NULL, 'tok', '{}')$$),
    ($$SELECT sdr_creds.store(NULL, NULL, 'tok', '{}')$$),
    ($$SELECT sdr_creds.store('zoho', NULL, '', '{}')$$),
    ($$SELECT sdr_creds.store('zoho', NULL, NULL, '{}')$$),
    ($$SELECT sdr_creds.store('zoho', NULL, repeat('t', 16385), '{}')$$),
    ($$SELECT sdr_creds.store('zoho', repeat('d', 2049), 'tok', '{}')$$),
    ($$SELECT sdr_creds.store('zoho', NULL, 'tok', '[1, 2]')$$),
    ($$SELECT sdr_creds.store('zoho', NULL, 'tok', '"text"')$$),
    ($$SELECT sdr_creds.store_json('{"provider": "zoho", "access_token": "tok"')$$),
    ($$SELECT sdr_creds.store_json('')$$),
    ($$SELECT sdr_creds.store_json(NULL)$$),
    ($$SELECT sdr_creds.store_json('[]')$$),
    ($$SELECT sdr_creds.store_json('"zoho"')$$),
    ($$SELECT sdr_creds.store_json('{"access_token": "tok"}')$$),
    ($$SELECT sdr_creds.store_json('{"provider": "zoho"}')$$),
    ($$SELECT sdr_creds.store_json('{"provider": "zoho", "access_token": null}')$$),
    ($$SELECT sdr_creds.store_json('{"provider": 7, "access_token": "tok"}')$$),
    ($$SELECT sdr_creds.store_json('{"provider": "zoho", "access_token": 12345}')$$),
    ($$SELECT sdr_creds.store_json('{"provider": "zoho", "access_token": "tok", "dsn": 1}')$$),
    ($$SELECT sdr_creds.store_json('{"provider": "zoho", "access_token": "tok", "metadata": "x"}')$$),
    ($$SELECT sdr_creds.store_json('{"provider": "zoho", "access_token": "tok", "metadata": [1]}')$$),
    ($$SELECT sdr_creds.store_json('{"provider": "zoho", "access_token": "tok\u0000x"}')$$)
  ) AS v(stmt);
SELECT json_array_length(sdr_creds.list()) AS still_two;

-- store_json takes the HTTP body: optional fields may be absent or null.
SELECT created, credential -> 'dsn' AS dsn, credential -> 'metadata' AS metadata
  FROM sdr_creds.store_json('{"provider": "zoho", "access_token": "made-up-zoho", "dsn": null, "metadata": null, "extra": 1}');
SELECT created, credential ->> 'dsn' AS dsn, credential -> 'metadata' AS metadata
  FROM sdr_creds.store_json('{"provider": "zoho", "dsn": "https://zoho.example", "access_token": "made-up-zoho-2", "metadata": {"refresh_token": "made-up"}}');
-- PostgREST reads response.status: 201 created, 200 replaced.
SELECT current_setting('response.status') AS postgrest_status;
COMMIT;
RESET ROLE;
DELETE FROM sdr_creds.credentials;
