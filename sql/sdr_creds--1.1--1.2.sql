\echo Use "ALTER EXTENSION sdr_creds UPDATE TO '1.2'" to load this file. \quit

-- sdr_creds 1.2: Bearer JWTs from identity providers (RS256/384/512, PS256,
-- ES256/384, EdDSA) verified against each issuer's public JWKS.

-- ---------------------------------------------------------------------------
-- Issuers and their public keys. A token whose header names an asymmetric
-- algorithm is verified with the key of its kid in the JWKS of its iss;
-- HS256 tokens keep using sdr_creds.jwt_secret. set_issuer() checks the JWKS
-- before storing it (public signature keys only). Every change empties every
-- backend's issuer and verified-token caches when it commits (a relcache
-- invalidation, also from logical replication's apply and, after replay, on
-- standbys), as for api_keys.

CREATE TABLE sdr_creds.issuers (
    issuer     text PRIMARY KEY CHECK (issuer <> '' AND octet_length(issuer) <= 512),
    jwks       jsonb NOT NULL,
    audience   text CHECK (audience <> '' AND octet_length(audience) <= 512),
    org_claim  text NOT NULL DEFAULT 'org_id'
               CHECK (org_claim <> '' AND octet_length(org_claim) <= 256),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE sdr_creds.issuers IS
  'identity providers whose JWTs authenticate: issuer (the tokens'' iss), public JWKS, audience (NULL: not checked), org claim (a name or dotted path)';
-- Row-level security with no policy: only the extension's functions (run as
-- its superuser owner) read or write it, whatever table privileges are granted.
ALTER TABLE sdr_creds.issuers ENABLE ROW LEVEL SECURITY;
ALTER TABLE sdr_creds.issuers FORCE ROW LEVEL SECURITY;
SELECT pg_catalog.pg_extension_config_dump('sdr_creds.issuers', '');

CREATE FUNCTION sdr_creds.issuers_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'sdr_creds_issuers_changed' LANGUAGE C;
COMMENT ON FUNCTION sdr_creds.issuers_changed() IS
  'trigger: any change to sdr_creds.issuers empties every backend''s issuer and token caches when it commits';
CREATE TRIGGER issuers_changed AFTER INSERT OR UPDATE OR DELETE ON sdr_creds.issuers
    FOR EACH ROW EXECUTE FUNCTION sdr_creds.issuers_changed();
CREATE TRIGGER issuers_truncated AFTER TRUNCATE ON sdr_creds.issuers
    FOR EACH STATEMENT EXECUTE FUNCTION sdr_creds.issuers_changed();
ALTER TABLE sdr_creds.issuers ENABLE ALWAYS TRIGGER issuers_changed;
ALTER TABLE sdr_creds.issuers ENABLE ALWAYS TRIGGER issuers_truncated;

CREATE FUNCTION sdr_creds.set_issuer(issuer text, jwks jsonb, audience text DEFAULT NULL,
                                     org_claim text DEFAULT 'org_id') RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_set_issuer'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.set_issuer(text, jsonb, text, text) IS
  'creates or replaces an issuer: its public JWKS (checked; PT422 if refused), audience and org claim; returns it as list_issuers() does';

CREATE FUNCTION sdr_creds.delete_issuer(issuer text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'sdr_creds_delete_issuer'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.delete_issuer(text) IS
  'removes an issuer (its tokens are refused at once); false if there was none';

CREATE FUNCTION sdr_creds.list_issuers()
    RETURNS TABLE (issuer text, jwks jsonb, jwks_sha256 text, key_ids text[], audience text,
                   org_claim text, created_at timestamptz, updated_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT i.issuer, i.jwks,
               pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(i.jwks::text, 'UTF8')), 'hex'),
               ARRAY(SELECT k OPERATOR(pg_catalog.->>) 'kid'
                       FROM pg_catalog.jsonb_array_elements(i.jwks OPERATOR(pg_catalog.->) 'keys') k),
               i.audience, i.org_claim, i.created_at, i.updated_at
          FROM sdr_creds.issuers i
         ORDER BY i.issuer
    $$;
COMMENT ON FUNCTION sdr_creds.list_issuers() IS
  'the issuers, each with its stored JWKS, the SHA-256 (hex) of the JWKS''s jsonb text, its keys'' kids, audience and org claim';

REVOKE ALL ON sdr_creds.issuers FROM PUBLIC;
REVOKE ALL ON FUNCTION sdr_creds.issuers_changed(), sdr_creds.set_issuer(text, jsonb, text, text),
    sdr_creds.delete_issuer(text), sdr_creds.list_issuers() FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- The API-key cache is invalidated per key: an UPDATE or DELETE of a key's row
-- drops that key alone from every backend's cache when it commits (and on
-- standbys after replay); the keys other sessions use stay cached. The
-- triggers are unchanged (the function tells the events apart).

COMMENT ON FUNCTION sdr_creds.api_keys_changed() IS
  'trigger: a changed or deleted key is dropped from every backend''s cache of verified API keys when it commits; TRUNCATE empties those caches';
