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
