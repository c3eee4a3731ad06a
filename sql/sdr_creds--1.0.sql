\echo Use "CREATE EXTENSION sdr_creds CASCADE" to load this file. \quit

-- sdr_creds 1.0: tables, row-level security and the SQL API.
-- Every function and table is revoked from PUBLIC; the README shows the GRANTs
-- an application role needs.
--
-- The API functions (authenticate*, store*, get*, list, delete) are C
-- functions that run their statements with their owner's privileges, as
-- SECURITY DEFINER would, switching identity in C (owner_enter in
-- sdr_creds.c): their statements name every schema, function and operator,
-- so no search_path can redirect them, and they skip the per-call cost of a
-- pinned search_path. Every SECURITY DEFINER function pins search_path.

-- ---------------------------------------------------------------------------
-- Tables

CREATE TABLE sdr_creds.credentials (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL,
    provider    text NOT NULL CHECK (provider ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    dsn         text,
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    secrets     bytea NOT NULL,
    key_version integer NOT NULL CHECK (key_version > 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT credentials_org_provider UNIQUE (org_id, provider)
);
CREATE INDEX credentials_org_newest ON sdr_creds.credentials (org_id, created_at DESC, id DESC);
CREATE INDEX credentials_key_version ON sdr_creds.credentials (key_version);
COMMENT ON TABLE sdr_creds.credentials IS
  'CRM credentials, one per organisation and provider; access_token and secret metadata are sealed in "secrets" (XChaCha20-Poly1305)';
COMMENT ON COLUMN sdr_creds.credentials.metadata IS 'plain (non-secret) metadata only';
COMMENT ON COLUMN sdr_creds.credentials.secrets IS 'nonce || ciphertext of access_token and secret metadata, bound to id, org_id, provider and key_version';

CREATE TABLE sdr_creds.api_keys (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL,
    name        text NOT NULL DEFAULT '',
    prefix      text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_org ON sdr_creds.api_keys (org_id);

-- Backends cache verified keys; any change to this table empties every cache.
CREATE FUNCTION sdr_creds.api_keys_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'sdr_creds_api_keys_changed' LANGUAGE C;
COMMENT ON FUNCTION sdr_creds.api_keys_changed() IS
  'trigger: invalidates every backend''s cache of verified API keys';
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sdr_creds.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION sdr_creds.api_keys_changed();
COMMENT ON TABLE sdr_creds.api_keys IS
  'API keys: only a SHA-256 hash and a short display prefix are kept';

CREATE TABLE sdr_creds.key_versions (
    version     integer PRIMARY KEY CHECK (version > 0),
    fingerprint bytea NOT NULL,
    first_used  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sdr_creds.key_versions IS
  'a keyed BLAKE2b fingerprint of each key version that has encrypted data, so a wrong keyring is refused before it writes';

-- ---------------------------------------------------------------------------
-- Org context

CREATE FUNCTION sdr_creds.current_org_id() RETURNS uuid
    AS 'MODULE_PATHNAME', 'sdr_creds_current_org_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION sdr_creds.current_org_id() IS
  'the organisation this transaction acts for, or NULL; set only by authenticate*() or act_as()';

CREATE FUNCTION sdr_creds.authenticate(credential text) RETURNS uuid
    AS 'MODULE_PATHNAME', 'sdr_creds_authenticate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.authenticate(text) IS
  'checks an API key (sk_live_/sk_test_) or an HS256 JWT and sets the transaction''s org context; PT401 if invalid';

CREATE FUNCTION sdr_creds.authenticate_headers(x_api_key text, authorization text) RETURNS uuid
    AS 'MODULE_PATHNAME', 'sdr_creds_authenticate_headers'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.authenticate_headers(text, text) IS
  'authenticates from the X-API-Key and Authorization header values (X-API-Key wins); PT401 if invalid';

CREATE FUNCTION sdr_creds.authenticate_request() RETURNS uuid
    AS 'MODULE_PATHNAME', 'sdr_creds_authenticate_request'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.authenticate_request() IS
  'authenticates from PostgREST''s request.headers setting (usable as db-pre-request); PT401 if invalid';

CREATE FUNCTION sdr_creds.act_as(org_id uuid) RETURNS uuid
    AS 'MODULE_PATHNAME', 'sdr_creds_act_as'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION sdr_creds.act_as(uuid) IS
  'trusted services only: sets the transaction''s org context; EXECUTE on this function is the trusted-service right';

-- ---------------------------------------------------------------------------
-- Credentials

CREATE FUNCTION sdr_creds.store(provider text, dsn text, access_token text,
                                metadata jsonb DEFAULT '{}',
                                OUT created boolean, OUT credential json)
    AS 'MODULE_PATHNAME', 'sdr_creds_store'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.store(text, text, text, jsonb) IS
  'creates or replaces the org''s credential for a provider; created tells which; secrets are encrypted before the row is written';

CREATE FUNCTION sdr_creds.store_json(body text, OUT created boolean, OUT credential json)
    AS 'MODULE_PATHNAME', 'sdr_creds_store_json'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.store_json(text) IS
  'store() from a JSON request body {"provider","dsn","access_token","metadata"}; PT422 on invalid JSON or fields';

CREATE FUNCTION sdr_creds.get_by_provider(provider text) RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_get_by_provider'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION sdr_creds.get_by_provider(text) IS
  'the org''s credential for a provider, decrypted; PT404 if none';

CREATE FUNCTION sdr_creds.get(id uuid) RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_get'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION sdr_creds.get(uuid) IS
  'a credential by id, decrypted; PT404 if no such id, PT403 if another org''s';

CREATE FUNCTION sdr_creds.list("limit" integer DEFAULT 100, "offset" integer DEFAULT 0) RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_list'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION sdr_creds.list(integer, integer) IS
  'the org''s credentials, newest first, without secret metadata; limit 1..1000, offset >= 0 (PT422 otherwise)';

CREATE FUNCTION sdr_creds.delete(id uuid) RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_delete'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.delete(uuid) IS
  'deletes a credential by id; PT404 if no such id, PT403 if another org''s';

-- ---------------------------------------------------------------------------
-- Administration: API keys and key rotation (granted to no one by default)

CREATE FUNCTION sdr_creds.create_api_key(org_id uuid, name text DEFAULT '',
                                         expires_at timestamptz DEFAULT NULL,
                                         environment text DEFAULT 'live') RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_create_api_key'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION sdr_creds.create_api_key(uuid, text, timestamptz, text) IS
  'creates an API key for an org; the key is in the result and is never shown again';

CREATE FUNCTION sdr_creds.list_api_keys(org_id uuid DEFAULT NULL)
    RETURNS TABLE (id uuid, org_id uuid, name text, prefix text, created_at timestamptz,
                   expires_at timestamptz, revoked_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT k.id, k.org_id, k.name, k.prefix, k.created_at, k.expires_at, k.revoked_at
          FROM sdr_creds.api_keys k
         WHERE $1 IS NULL OR k.org_id = $1
         ORDER BY k.created_at, k.id
    $$;
COMMENT ON FUNCTION sdr_creds.list_api_keys(uuid) IS
  'API keys (display prefix only), of one org or of all';

CREATE FUNCTION sdr_creds.revoke_api_key(id uuid) RETURNS boolean
    LANGUAGE sql VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        WITH r AS (
            UPDATE sdr_creds.api_keys k SET revoked_at = pg_catalog.now()
             WHERE k.id = $1 AND k.revoked_at IS NULL
            RETURNING 1)
        SELECT pg_catalog.count(*) > 0 FROM r
    $$;
COMMENT ON FUNCTION sdr_creds.revoke_api_key(uuid) IS
  'revokes an API key at once; true if it was active';

CREATE FUNCTION sdr_creds.rotate_keys(batch_size integer DEFAULT 1000,
                                      OUT rotated integer, OUT remaining bigint)
    AS 'MODULE_PATHNAME', 'sdr_creds_rotate_keys'
    LANGUAGE C VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION sdr_creds.rotate_keys(integer) IS
  're-encrypts up to batch_size credentials under the newest key; call until remaining = 0';

CREATE PROCEDURE sdr_creds.rotate_all_keys(batch_size integer DEFAULT 1000)
    LANGUAGE plpgsql
    AS $$
    DECLARE
        r record;
        total bigint := 0;
    BEGIN
        LOOP
            SELECT * INTO r FROM sdr_creds.rotate_keys(batch_size);
            total := total + r.rotated;
            RAISE NOTICE 'sdr_creds: % credentials re-encrypted, % remaining', total, r.remaining;
            COMMIT;
            EXIT WHEN r.remaining = 0 OR r.rotated = 0;
        END LOOP;
    END
    $$;
COMMENT ON PROCEDURE sdr_creds.rotate_all_keys(integer) IS
  're-encrypts every credential under the newest key, committing after each batch (resumable)';

-- ---------------------------------------------------------------------------
-- Row-level security: a role given direct access sees only its org's rows.

ALTER TABLE sdr_creds.credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE sdr_creds.credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON sdr_creds.credentials
    USING (org_id = sdr_creds.current_org_id())
    WITH CHECK (org_id = sdr_creds.current_org_id());

ALTER TABLE sdr_creds.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE sdr_creds.api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON sdr_creds.api_keys
    USING (org_id = sdr_creds.current_org_id())
    WITH CHECK (org_id = sdr_creds.current_org_id());

-- key_versions belongs to no org: no one but the extension's owner reads it.
ALTER TABLE sdr_creds.key_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sdr_creds.key_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON sdr_creds.key_versions USING (false) WITH CHECK (false);

-- ---------------------------------------------------------------------------
-- pg_dump dumps the rows of these tables (extension members are skipped otherwise).

SELECT pg_catalog.pg_extension_config_dump('sdr_creds.credentials', '');
SELECT pg_catalog.pg_extension_config_dump('sdr_creds.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('sdr_creds.key_versions', '');

-- ---------------------------------------------------------------------------
-- Nothing is usable by PUBLIC.

REVOKE ALL ON ALL TABLES IN SCHEMA sdr_creds FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA sdr_creds FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA sdr_creds FROM PUBLIC;
REVOKE ALL ON SCHEMA sdr_creds FROM PUBLIC;
