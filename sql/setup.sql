-- Installs the extension and the roles and helpers the other tests share.
CREATE EXTENSION sdr_creds CASCADE;
SELECT extname, extversion FROM pg_extension WHERE extname IN ('sdr_creds', 'pgcrypto') ORDER BY 1;

-- Roles: an application (the README's GRANTs), a reporting role with direct
-- SELECT (to see row-level security at work), a trusted service, and a role
-- with nothing.
DO $$
BEGIN
  CREATE ROLE sdr_app NOLOGIN;
  CREATE ROLE sdr_reporter NOLOGIN;
  CREATE ROLE sdr_service NOLOGIN;
  CREATE ROLE sdr_nobody NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

GRANT USAGE ON SCHEMA sdr_creds TO sdr_app, sdr_reporter, sdr_service;
GRANT EXECUTE ON FUNCTION
    sdr_creds.authenticate(text),
    sdr_creds.authenticate_headers(text, text),
    sdr_creds.authenticate_request(),
    sdr_creds.current_org_id(),
    sdr_creds.store(text, text, text, jsonb),
    sdr_creds.store_json(text),
    sdr_creds.get_by_provider(text),
    sdr_creds.get(uuid),
    sdr_creds.list(integer, integer),
    sdr_creds.delete(uuid)
  TO sdr_app, sdr_service;
GRANT EXECUTE ON FUNCTION sdr_creds.act_as(uuid) TO sdr_service;
GRANT EXECUTE ON FUNCTION sdr_creds.authenticate(text), sdr_creds.current_org_id() TO sdr_reporter;
GRANT SELECT, INSERT, UPDATE, DELETE ON sdr_creds.credentials, sdr_creds.api_keys TO sdr_reporter;

-- Helpers (schema t): run a statement and report its error, make API keys and JWTs.
CREATE SCHEMA t;
GRANT USAGE ON SCHEMA t TO PUBLIC;

CREATE FUNCTION t.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  detail text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(detail, '') || ')', '');
END $$;

CREATE FUNCTION t.new_key(org uuid, env text DEFAULT 'live', expires timestamptz DEFAULT NULL)
RETURNS text LANGUAGE sql SECURITY DEFINER AS $$
  SELECT sdr_creds.create_api_key(org, 'test key', expires, env) ->> 'key'
$$;

CREATE FUNCTION t.b64url(b bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT rtrim(translate(encode(b, 'base64'), E'+/\n', '-_'), '=')
$$;

CREATE FUNCTION t.b64url(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT t.b64url(convert_to(s, 'UTF8'))
$$;

-- An HS256 JWT signed with pgcrypto's HMAC (an implementation independent of ours).
CREATE FUNCTION t.jwt(payload text, secret text,
                      header text DEFAULT '{"alg":"HS256","typ":"JWT"}') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT s || '.' || t.b64url(public.hmac(s, secret, 'sha256'))
    FROM (SELECT t.b64url(header) || '.' || t.b64url(payload) AS s) x
$$;

CREATE FUNCTION t.epoch(offset_seconds integer DEFAULT 0) RETURNS bigint LANGUAGE sql AS $$
  SELECT extract(epoch FROM now())::bigint + offset_seconds
$$;
