-- Authentication: API keys, JWTs, PostgREST's request.headers, and the org
-- context's lifetime. Every failure is PT401 with the same message.
\set org_a '00000000-0000-4000-8000-00000000000a'
\set org_b '00000000-0000-4000-8000-00000000000b'
SET sdr_creds.jwt_secret TO 'made-up-test-secret-0123456789abcdef';

-- Creating a key shows it once; only its hash and prefix are stored.
SELECT sdr_creds.create_api_key(:'org_a', 'crm sync') AS created \gset
SELECT json_object_keys(:'created'::json) AS field;
SELECT :'created'::json ->> 'key' ~ '^sk_live_[A-Za-z0-9_-]{32}$' AS key_format,
       :'created'::json ->> 'prefix' = left(:'created'::json ->> 'key', 12) AS prefix_is_head,
       :'created'::json ->> 'name' AS name,
       :'created'::json ->> 'org_id' AS org_id;
SELECT count(*) AS stored_as_hash FROM sdr_creds.api_keys
 WHERE key_hash = sha256(convert_to(:'created'::json ->> 'key', 'UTF8'))
   AND prefix = left(:'created'::json ->> 'key', 12);
SELECT count(*) AS plaintext_rows FROM sdr_creds.api_keys k
 WHERE position(convert_to(:'created'::json ->> 'key', 'UTF8') IN k.key_hash) > 0
    OR k.prefix = :'created'::json ->> 'key' OR k.name = :'created'::json ->> 'key';
SELECT t.new_key(:'org_a', 'test') ~ '^sk_test_' AS test_environment;
SELECT t.try($$SELECT sdr_creds.create_api_key('00000000-0000-4000-8000-00000000000a', 'x', NULL, 'prod')$$) AS bad_environment;
SELECT t.try($$SELECT sdr_creds.create_api_key('00000000-0000-4000-8000-00000000000a', 'x', now() - interval '1 day')$$) AS expired_at_birth;
SELECT t.try($$SELECT sdr_creds.create_api_key(NULL)$$) AS null_org;
SELECT name, prefix = left(:'created'::json ->> 'key', 12) AS prefix_only, revoked_at IS NULL AS active
  FROM sdr_creds.list_api_keys(:'org_a') WHERE id = (:'created'::json ->> 'id')::uuid;

SELECT t.new_key(:'org_a') AS key_a, t.new_key(:'org_b') AS key_b \gset
SELECT t.new_key(:'org_a', 'live', now() + interval '1 hour') AS key_expiring \gset
SELECT t.new_key(:'org_a') AS key_revoked \gset
SELECT sdr_creds.revoke_api_key(id) AS revoked FROM sdr_creds.api_keys WHERE key_hash = sha256(convert_to(:'key_revoked', 'UTF8'));
SELECT sdr_creds.revoke_api_key(id) AS revoked_again FROM sdr_creds.api_keys WHERE key_hash = sha256(convert_to(:'key_revoked', 'UTF8'));
UPDATE sdr_creds.api_keys SET expires_at = now() - interval '1 second'
 WHERE key_hash = sha256(convert_to(:'key_expiring', 'UTF8'));

SET ROLE sdr_app;
-- A valid key sets the context for this transaction only.
SELECT sdr_creds.current_org_id() IS NULL AS no_context_yet;
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') AS org;
SELECT sdr_creds.current_org_id() AS context;
COMMIT;
SELECT sdr_creds.current_org_id() IS NULL AS cleared_by_commit;
BEGIN;
SELECT sdr_creds.authenticate(:'key_b') AS org;
ROLLBACK;
SELECT sdr_creds.current_org_id() IS NULL AS cleared_by_rollback;
BEGIN;
SELECT sdr_creds.authenticate(:'key_a') AS org;
SELECT t.try('SELECT 1/0') AS error_in_transaction;
SELECT sdr_creds.current_org_id() AS still_set_until_end;
COMMIT;

-- API keys that must be refused.
SELECT t.try(format('SELECT sdr_creds.authenticate(%L)', k)) AS result, what
  FROM (VALUES
    (:'key_revoked', 'revoked'),
    (:'key_expiring', 'expired'),
    (left(:'key_a', 20), 'prefix of a real key'),
    (:'key_a' || 'x', 'real key plus a character'),
    ('sk_live_', 'prefix alone'),
    ('sk_test_' || substr(:'key_a', 9), 'another environment''s prefix'),
    ('sk_prod_' || substr(:'key_a', 9), 'unknown environment'),
    ('', 'empty'),
    ('sk_live_' || repeat('a', 10240), '10 KB'),
    ('sk_live_'' OR ''1''=''1', 'SQL metacharacters'),
    (upper(:'key_a'), 'wrong case')
  ) AS v(k, what);
SELECT t.try('SELECT sdr_creds.authenticate(NULL)') AS null_credential;

-- JWTs (HS256, secret from sdr_creds.jwt_secret, org from the org_id claim).
\set secret 'made-up-test-secret-0123456789abcdef'
SELECT t.jwt(format('{"org_id": "%s", "exp": %s}', :'org_b', t.epoch(300)), :'secret') AS jwt_b \gset
BEGIN;
SELECT sdr_creds.authenticate(:'jwt_b') AS org_from_jwt;
COMMIT;
SELECT t.try(format('SELECT sdr_creds.authenticate(%L)', tok)) AS result, what
  FROM (VALUES
    (t.jwt(format('{"org_id": "%s", "exp": %s}', :'org_b', t.epoch(-15)), :'secret'), 'expired within the 30 s leeway'),
    (t.jwt(format('{"org_id": "%s", "nbf": %s}', :'org_b', t.epoch(10)), :'secret'), 'not yet valid within the leeway'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret'), 'no exp'),
    (t.jwt(format('{"org_id": "%s", "exp": %s, "aud": "anything"}', :'org_b', t.epoch(60)), :'secret'), 'aud when none configured')
  ) AS v(tok, what);
SELECT t.try(format('SELECT sdr_creds.authenticate(%L)', tok)) AS result, what
  FROM (VALUES
    (t.jwt(format('{"org_id": "%s", "exp": %s}', :'org_b', t.epoch(-45)), :'secret'), 'expired beyond the leeway'),
    (t.jwt(format('{"org_id": "%s", "nbf": %s}', :'org_b', t.epoch(60)), :'secret'), 'not yet valid'),
    (t.jwt(format('{"org_id": "%s", "exp": "%s"}', :'org_b', t.epoch(60)), :'secret'), 'exp not a number'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), 'another-secret-that-is-long-enough-0123'), 'signed with another secret'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret', '{"alg":"none","typ":"JWT"}'), 'alg none, signed anyway'),
    (t.b64url('{"alg":"none"}') || '.' || t.b64url(format('{"org_id": "%s"}', :'org_b')) || '.', 'alg none, empty signature'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret', '{"alg":"HS512","typ":"JWT"}'), 'alg HS512'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret', '{"alg":"RS256","typ":"JWT"}'), 'alg RS256'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret', '{"alg":"hs256"}'), 'alg in lower case'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret', '{"typ":"JWT"}'), 'no alg'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret', '{"alg":"HS256","crit":["exp"]}'), 'crit header'),
    (left(:'jwt_b', length(:'jwt_b') - 4), 'truncated signature'),
    (:'jwt_b' || '.x', 'four segments'),
    (split_part(:'jwt_b', '.', 1) || '.' || t.b64url(format('{"org_id": "%s", "exp": %s}', :'org_a', t.epoch(300))) || '.' || split_part(:'jwt_b', '.', 3), 'payload swapped'),
    (t.jwt('{"sub": "someone"}', :'secret'), 'no org_id claim'),
    (t.jwt('{"org_id": "not-a-uuid"}', :'secret'), 'org_id not a UUID'),
    (t.jwt('{"org_id": 42}', :'secret'), 'org_id a number'),
    (t.jwt(format('{"org_id": "%s", "org_id": "%s"}', :'org_b', :'org_a'), :'secret'), 'duplicate org_id claim'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret', '{"alg":"none","alg":"HS256"}'), 'duplicate alg'),
    (t.jwt(format('{"org_id": ["%s"]}', :'org_b'), :'secret'), 'org_id in an array'),
    (t.jwt(format('{"org_id": "%s", "exp": {"n": 1}}', :'org_b'), :'secret'), 'exp an object'),
    (t.jwt(format('{"org_id": "%s\u0000"}', :'org_b'), :'secret'), 'NUL escape in org_id'),
    (t.jwt('[1, 2]', :'secret'), 'payload an array'),
    (t.jwt('not json', :'secret'), 'payload not JSON'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret', 'not json'), 'header not JSON'),
    ('eyJhbGciOiJIUzI1NiJ9.e30', 'two segments'),
    ('...', 'empty segments'),
    ('a.b.c' || repeat('c', 10000), '10 KB')
  ) AS v(tok, what);

-- Audience, when configured, must match.
RESET ROLE;
SET sdr_creds.jwt_audience TO 'sdr-creds';
SET ROLE sdr_app;
SELECT t.try(format('SELECT sdr_creds.authenticate(%L)', tok)) AS result, what
  FROM (VALUES
    (t.jwt(format('{"org_id": "%s", "aud": "sdr-creds"}', :'org_b'), :'secret'), 'aud matches'),
    (t.jwt(format('{"org_id": "%s", "aud": ["other", "sdr-creds"]}', :'org_b'), :'secret'), 'aud list holds it'),
    (t.jwt(format('{"org_id": "%s", "aud": "other"}', :'org_b'), :'secret'), 'wrong aud'),
    (t.jwt(format('{"org_id": "%s", "aud": ["other"]}', :'org_b'), :'secret'), 'aud list without it'),
    (t.jwt(format('{"org_id": "%s"}', :'org_b'), :'secret'), 'no aud')
  ) AS v(tok, what);
RESET ROLE;
RESET sdr_creds.jwt_audience;

-- A secret shorter than 32 bytes disables JWTs.
SET sdr_creds.jwt_secret TO 'short-made-up-secret';
SET ROLE sdr_app;
SELECT t.try(format('SELECT sdr_creds.authenticate(%L)', t.jwt(format('{"org_id": "%s"}', :'org_b'), 'short-made-up-secret'))) AS short_secret;
RESET ROLE;
SET sdr_creds.jwt_secret TO 'made-up-test-secret-0123456789abcdef';
SET ROLE sdr_app;

-- Headers: X-API-Key wins over Authorization; the scheme must be Bearer.
BEGIN;
SELECT sdr_creds.authenticate_headers(:'key_a', 'Bearer ' || :'jwt_b') AS api_key_wins;
SELECT sdr_creds.authenticate_headers(NULL, 'Bearer ' || :'jwt_b') AS bearer;
SELECT sdr_creds.authenticate_headers(NULL, 'bearer ' || :'jwt_b') AS scheme_any_case;
COMMIT;
SELECT t.try(format('SELECT sdr_creds.authenticate_headers(%L, %L)', a, b)) AS result, what
  FROM (VALUES
    (NULL, NULL, 'no headers'),
    ('', 'Bearer ' || :'jwt_b', 'empty X-API-Key still wins'),
    (:'key_revoked', 'Bearer ' || :'jwt_b', 'bad X-API-Key is not rescued by a good JWT'),
    (NULL, :'jwt_b', 'no scheme'),
    (NULL, 'Basic ' || :'jwt_b', 'Basic scheme'),
    (NULL, 'Bearer ' || :'key_a', 'API key as a bearer token')
  ) AS v(a, b, what);

-- PostgREST: request.headers is read when no context is set. It cannot forge
-- anything: only a valid key or JWT in it counts.
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-key', :'key_a')::text, true) IS NOT NULL AS headers_set;
SELECT sdr_creds.list() AS list_via_request_headers;
SELECT sdr_creds.current_org_id() AS context;
COMMIT;
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'jwt_b')::text, true) IS NOT NULL AS headers_set;
SELECT sdr_creds.authenticate_request() AS org_from_request;
COMMIT;
SELECT t.try(format($$SELECT set_config('request.headers', %L, true), sdr_creds.list()$$, h)) AS result, what
  FROM (VALUES
    ('{}', 'no credentials'),
    ('{"x-api-key": "sk_live_made-up-not-a-real-key-000000"}', 'unknown key'),
    ('not json', 'not JSON'),
    ('{"x-api-key": 42}', 'key not a string'),
    (format('{"authorization": "Bearer %s"}', t.jwt(format('{"org_id": "%s"}', :'org_b'), 'forged-secret-that-is-long-enough-01234')), 'forged JWT')
  ) AS v(h, what);
SELECT t.try($$SELECT set_config('request.jwt.claims', '{"org_id": "00000000-0000-4000-8000-00000000000a"}', true), sdr_creds.list()$$) AS postgrest_claims_are_not_trusted;
SELECT t.try('SELECT sdr_creds.authenticate_request()') AS no_request_headers;
RESET ROLE;
