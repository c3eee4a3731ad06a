\echo Use "ALTER EXTENSION sdr_creds UPDATE TO '1.1'" to load this file. \quit

-- sdr_creds 1.1: tamper-evident rows, immediate revocation under logical
-- replication, read-only direct table access, argument checks.

-- ---------------------------------------------------------------------------
-- Sealed format 2 binds a row's secrets to a hash of its dsn and plain
-- metadata too, so a row whose dsn or instance_url was changed outside the
-- extension no longer opens. Rows written before stay in format 1 (readable
-- as they are) until rotate_keys() or a new store re-seals them.

ALTER TABLE sdr_creds.credentials
    ADD COLUMN seal_format smallint NOT NULL DEFAULT 1 CHECK (seal_format IN (1, 2));
COMMENT ON COLUMN sdr_creds.credentials.seal_format IS
  '1: secrets bound to id, org_id, provider and key_version; 2: also to a hash of dsn and metadata';
COMMENT ON COLUMN sdr_creds.credentials.secrets IS
  'nonce || ciphertext of access_token and secret metadata, bound to the row (see seal_format)';

-- ---------------------------------------------------------------------------
-- Every change to api_keys empties every backend's key cache, also when made
-- by logical replication's apply worker (session_replication_role = replica,
-- which fires only row triggers, and only ENABLE ALWAYS ones).

DROP TRIGGER api_keys_changed ON sdr_creds.api_keys;
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON sdr_creds.api_keys
    FOR EACH ROW EXECUTE FUNCTION sdr_creds.api_keys_changed();
CREATE TRIGGER api_keys_truncated AFTER TRUNCATE ON sdr_creds.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION sdr_creds.api_keys_changed();
ALTER TABLE sdr_creds.api_keys ENABLE ALWAYS TRIGGER api_keys_changed;
ALTER TABLE sdr_creds.api_keys ENABLE ALWAYS TRIGGER api_keys_truncated;

-- ---------------------------------------------------------------------------
-- A role given direct table access only reads its org's rows: no policy
-- allows writes, so (RLS being forced) only the extension's functions, which
-- run as its superuser owner, write. A role with table privileges cannot
-- mint, extend or un-revoke an API key, nor write a credential.

DROP POLICY org_isolation ON sdr_creds.credentials;
CREATE POLICY org_read ON sdr_creds.credentials FOR SELECT
    USING (org_id OPERATOR(pg_catalog.=) sdr_creds.current_org_id());
DROP POLICY org_isolation ON sdr_creds.api_keys;
CREATE POLICY org_read ON sdr_creds.api_keys FOR SELECT
    USING (org_id OPERATOR(pg_catalog.=) sdr_creds.current_org_id());

-- ---------------------------------------------------------------------------
-- rotate_all_keys(NULL) looped forever (rotate_keys is STRICT).

CREATE OR REPLACE PROCEDURE sdr_creds.rotate_all_keys(batch_size integer DEFAULT 1000)
    LANGUAGE plpgsql
    AS $$
    DECLARE
        r record;
        total bigint := 0;
    BEGIN
        IF batch_size IS NULL OR batch_size < 1 THEN
            RAISE EXCEPTION 'batch_size must be positive' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        LOOP
            SELECT * INTO r FROM sdr_creds.rotate_keys(batch_size);
            total := total + r.rotated;
            RAISE NOTICE 'sdr_creds: % credentials re-encrypted, % remaining', total, r.remaining;
            COMMIT;
            EXIT WHEN r.remaining = 0 OR r.rotated = 0;
        END LOOP;
    END
    $$;

COMMENT ON FUNCTION sdr_creds.current_org_id() IS
  'the organisation the current role acts for in this transaction, or NULL; set only by authenticate*() or act_as()';
COMMENT ON FUNCTION sdr_creds.act_as(uuid) IS
  'trusted services only: sets the org context for the calling role; EXECUTE on this function is the trusted-service right';
COMMENT ON FUNCTION sdr_creds.rotate_keys(integer) IS
  're-encrypts up to batch_size credentials under the newest key and sealed format; call until remaining = 0';

-- ---------------------------------------------------------------------------
-- Usage statistics (shared memory)
--
-- Kept in shared memory by the library (src/usage.c) when it is in
-- shared_preload_libraries, as pg_stat_statements does; empty otherwise.
-- sdr_creds.usage_max (server start) sizes each table; the least recently
-- used entries are evicted when one is full. The statistics start empty at
-- each server start (they are not saved) and pg_stat_reset() leaves them;
-- sdr_creds.usage_reset() empties them. Who sees what is decided in C: a
-- role with an org context (after authenticate*() or act_as()) sees only its
-- org's usage and no failed authentications; otherwise superusers and
-- members of pg_read_all_stats see everything and other roles nothing (the
-- org context belongs to the backend: the functions are PARALLEL RESTRICTED).

CREATE FUNCTION sdr_creds.usage_entries(
        OUT org_id uuid, OUT principal text, OUT action text, OUT calls bigint,
        OUT failures bigint, OUT first_at timestamptz, OUT last_at timestamptz,
        OUT last_client text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'sdr_creds_usage_entries'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION sdr_creds.usage_entries() IS
  'API calls per org, principal and action since the server started or usage_reset(), as the caller may see them';

CREATE FUNCTION sdr_creds.auth_failure_entries(
        OUT key_prefix text, OUT client text, OUT failures bigint,
        OUT last_at timestamptz, OUT last_reason text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'sdr_creds_auth_failure_entries'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION sdr_creds.auth_failure_entries() IS
  'failed authentications per key prefix (or unknown / jwt) and client since the server started or usage_reset(); superusers and pg_read_all_stats only, without an org context';

CREATE VIEW sdr_creds.usage AS SELECT * FROM sdr_creds.usage_entries();
COMMENT ON VIEW sdr_creds.usage IS
  'API calls per org, principal (key:<id>, jwt:<sub>, service:<role>) and action: calls, failures (4xx after authentication), first and last time, last client; in shared memory, reset at server start';

CREATE VIEW sdr_creds.auth_failures AS SELECT * FROM sdr_creds.auth_failure_entries();
COMMENT ON VIEW sdr_creds.auth_failures IS
  'failed authentications per key prefix (or unknown / jwt) and client: count, last time and reason; in shared memory, reset at server start';

CREATE FUNCTION sdr_creds.usage_reset() RETURNS void
    AS 'MODULE_PATHNAME', 'sdr_creds_usage_reset'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION sdr_creds.usage_reset() IS
  'empties sdr_creds.usage and sdr_creds.auth_failures (superusers, or roles granted EXECUTE)';

REVOKE ALL ON FUNCTION sdr_creds.usage_entries(), sdr_creds.auth_failure_entries(),
    sdr_creds.usage_reset() FROM PUBLIC;
REVOKE ALL ON sdr_creds.usage, sdr_creds.auth_failures FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sdr_creds.usage_entries(), sdr_creds.auth_failure_entries()
    TO pg_read_all_stats;
GRANT SELECT ON sdr_creds.usage, sdr_creds.auth_failures TO pg_read_all_stats;

-- The HTTP server passes its peer's address, so audit lines and statistics
-- name the real client (the backend's own client, the server, follows as
-- via= in audit lines). Grant it to the server's role only: whoever may call
-- it chooses the address recorded.
CREATE FUNCTION sdr_creds.authenticate_headers(x_api_key text, authorization text, client text)
    RETURNS uuid
    AS 'MODULE_PATHNAME', 'sdr_creds_authenticate_headers'
    LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION sdr_creds.authenticate_headers(text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION sdr_creds.authenticate_headers(text, text, text) IS
  'authenticate_headers(), recording client (an IP address) as the caller''s address for this transaction';

-- list_api_keys() adds each key's last use, from the statistics above (no
-- row is written per request): NULL when unused since the server started.
DROP FUNCTION sdr_creds.list_api_keys(uuid);
CREATE FUNCTION sdr_creds.list_api_keys(org_id uuid DEFAULT NULL)
    RETURNS TABLE (id uuid, org_id uuid, name text, prefix text, created_at timestamptz,
                   expires_at timestamptz, revoked_at timestamptz,
                   last_used_at timestamptz, last_used_from text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        WITH last_use AS (
            SELECT DISTINCT ON (u.principal) u.principal, u.last_at, u.last_client
              FROM sdr_creds.usage_entries() u
             WHERE u.principal LIKE 'key:%'
             ORDER BY u.principal, u.last_at DESC)
        SELECT k.id, k.org_id, k.name, k.prefix, k.created_at, k.expires_at, k.revoked_at,
               l.last_at, l.last_client
          FROM sdr_creds.api_keys k
          LEFT JOIN last_use l ON l.principal = 'key:' || k.id::text
         WHERE $1 IS NULL OR k.org_id = $1
         ORDER BY k.created_at, k.id
    $$;
REVOKE ALL ON FUNCTION sdr_creds.list_api_keys(uuid) FROM PUBLIC;
COMMENT ON FUNCTION sdr_creds.list_api_keys(uuid) IS
  'API keys (display prefix only), of one org or of all, with their last use (time and client) since the server started';

-- ---------------------------------------------------------------------------
-- Token refresh
--
-- A credential may carry an expiry: store() takes metadata.expires_in
-- (seconds from now) or metadata.expires_at (a timestamp or Unix seconds)
-- and keeps it as plain metadata.expires_at (RFC 3339, UTC) and in the
-- indexed column expires_at. A credential is refreshable when its secret
-- metadata holds a refresh_token and it has not been marked
-- refresh_status = needs_reauthorization.
--
-- The refresher (src/refresher/, a process beside the database: backends
-- never make HTTP calls) claims due credentials with refresh_claim(), which
-- locks them FOR UPDATE SKIP LOCKED, sends the OAuth refresh request while
-- holding the lock, and hands the provider's answer to refresh_record() in
-- the same transaction. Both are granted to no one: grant them to the
-- refresher's own role (README, Token refresh).

ALTER TABLE sdr_creds.credentials
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN refreshable boolean NOT NULL DEFAULT false,
    ADD COLUMN refresh_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN refresh_retry_at timestamptz,
    ADD COLUMN refresh_requested_at timestamptz,
    ADD COLUMN refresh_error text CHECK (refresh_error ~ '^[a-z0-9_]{1,64}$');
COMMENT ON COLUMN sdr_creds.credentials.expires_at IS
  'when the access token expires (the same as metadata.expires_at), or NULL if unknown';
COMMENT ON COLUMN sdr_creds.credentials.refreshable IS
  'has a refresh token and does not need re-authorization';
COMMENT ON COLUMN sdr_creds.credentials.refresh_retry_at IS
  'after a failed refresh: not before this time (exponential back-off with jitter, Retry-After)';
COMMENT ON COLUMN sdr_creds.credentials.refresh_requested_at IS
  'an immediate refresh was asked for (request_refresh) and not yet made';
COMMENT ON COLUMN sdr_creds.credentials.refresh_error IS
  'the last refresh failure: invalid_grant, http_500, timeout, malformed_response, ...';
CREATE INDEX credentials_refresh_due ON sdr_creds.credentials (expires_at) WHERE refreshable;
CREATE INDEX credentials_refresh_requested ON sdr_creds.credentials (refresh_requested_at)
    WHERE refresh_requested_at IS NOT NULL;

-- An OAuth client per org and provider: where and how to refresh. The
-- client secret is sealed like a credential's secrets (XChaCha20-Poly1305),
-- bound to the row's id, org, provider, key version, token URL, client id,
-- auth method and scopes: a row whose token_url was changed outside the
-- extension no longer opens, so the secret is never sent elsewhere.
CREATE TABLE sdr_creds.oauth_clients (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL,
    provider    text NOT NULL CHECK (provider ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    token_url   text NOT NULL,
    client_id   text NOT NULL,
    auth_method text NOT NULL CHECK (auth_method IN ('client_secret_basic', 'client_secret_post')),
    scopes      text,
    secret      bytea NOT NULL,
    key_version integer NOT NULL CHECK (key_version > 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT oauth_clients_org_provider UNIQUE (org_id, provider)
);
COMMENT ON TABLE sdr_creds.oauth_clients IS
  'OAuth clients for token refresh, one per organisation and provider; the client secret is sealed in "secret"';
ALTER TABLE sdr_creds.oauth_clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE sdr_creds.oauth_clients FORCE ROW LEVEL SECURITY;
CREATE POLICY org_read ON sdr_creds.oauth_clients FOR SELECT
    USING (org_id OPERATOR(pg_catalog.=) sdr_creds.current_org_id());
SELECT pg_catalog.pg_extension_config_dump('sdr_creds.oauth_clients', '');

CREATE FUNCTION sdr_creds.set_oauth_client(provider text, token_url text, client_id text,
                                           client_secret text,
                                           auth_method text DEFAULT 'client_secret_basic',
                                           scopes text DEFAULT NULL) RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_set_oauth_client'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.set_oauth_client(text, text, text, text, text, text) IS
  'creates or replaces the org''s OAuth client for a provider (https token URL); returns it without the secret';

CREATE FUNCTION sdr_creds.delete_oauth_client(provider text) RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_delete_oauth_client'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.delete_oauth_client(text) IS
  'deletes the org''s OAuth client for a provider; PT404 if none';

CREATE FUNCTION sdr_creds.list_oauth_clients() RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_list_oauth_clients'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION sdr_creds.list_oauth_clients() IS
  'the org''s OAuth clients, without their secrets';

CREATE FUNCTION sdr_creds.request_refresh(id uuid) RETURNS json
    AS 'MODULE_PATHNAME', 'sdr_creds_request_refresh'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.request_refresh(uuid) IS
  'asks the refreshers to refresh a credential now (clears its back-off, notifies channel sdr_creds_refresh); PT409 if it cannot be refreshed';

CREATE FUNCTION sdr_creds.refresh_claim(window_seconds integer DEFAULT 300, batch_size integer DEFAULT 1,
        OUT credential_id uuid, OUT org_id uuid, OUT provider text, OUT token_url text,
        OUT client_id text, OUT client_secret text, OUT auth_method text, OUT scopes text,
        OUT refresh_token text, OUT failures integer)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'sdr_creds_refresh_claim'
    LANGUAGE C VOLATILE ROWS 1;
COMMENT ON FUNCTION sdr_creds.refresh_claim(integer, integer) IS
  'refreshers only: locks up to batch_size credentials due for refresh (FOR UPDATE SKIP LOCKED) for this transaction and returns what the refresh request needs, secrets decrypted';

CREATE FUNCTION sdr_creds.refresh_record(credential_id uuid, http_status integer, body bytea,
        retry_after integer DEFAULT NULL, error text DEFAULT NULL,
        OUT outcome text, OUT rotated boolean, OUT expires_at timestamptz,
        OUT retry_at timestamptz, OUT refresh_error text)
    AS 'MODULE_PATHNAME', 'sdr_creds_refresh_record'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sdr_creds.refresh_record(uuid, integer, bytea, integer, text) IS
  'refreshers only: stores the token endpoint''s answer for a credential claimed in this transaction: refreshed, needs_reauthorization (invalid_grant) or retry (back-off)';

REVOKE ALL ON sdr_creds.oauth_clients FROM PUBLIC;
REVOKE ALL ON FUNCTION sdr_creds.set_oauth_client(text, text, text, text, text, text),
    sdr_creds.delete_oauth_client(text), sdr_creds.list_oauth_clients(),
    sdr_creds.request_refresh(uuid), sdr_creds.refresh_claim(integer, integer),
    sdr_creds.refresh_record(uuid, integer, bytea, integer, text) FROM PUBLIC;
