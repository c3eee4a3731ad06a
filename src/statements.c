/*
 * statements.c: the extension's tables and indexes by name, with OIDs cached
 * as pg_cron does (forgotten on a relcache invalidation of any of them), and
 * every SQL statement the extension runs, prepared on first use and kept for
 * the backend's life.
 *
 * Every statement names its schema, functions and operators (EQ, NE, GT), so
 * no search_path can redirect it: the API functions run as their owner
 * without pinning search_path (see owner_enter).
 */
#include "statements.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "crypto.h"
#include "executor/spi.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

static const char *const rel_names[REL_COUNT] = {
	[REL_CREDENTIALS] = "credentials",
	[REL_CREDENTIALS_BY_PROVIDER] = "credentials_org_provider",
	[REL_API_KEYS] = "api_keys",
	[REL_API_KEYS_BY_HASH] = "api_keys_key_hash_key",
	[REL_ISSUERS] = "issuers",
};

static Oid	rel_oids[REL_COUNT];

static void
forget_relids(Datum arg, Oid relid)
{
	for (int i = 0; i < REL_COUNT; i++)
		if (relid == InvalidOid || rel_oids[i] == relid)
			rel_oids[i] = InvalidOid;
}

bool
sdr_relid_concerned(SdrRelation rel, Oid relid)
{
	Oid			known = rel_oids[rel];

	return relid == InvalidOid || known == InvalidOid || relid == known;
}

void
sdr_relcache_watch(RelcacheCallbackFunction callback, bool *watching)
{
	if (!*watching)
	{
		CacheRegisterRelcacheCallback(callback, (Datum) 0);
		*watching = true;
	}
}

struct TriggerData *
sdr_invalidating_trigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be called as a trigger", name)));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return trigdata;
}

Datum
sdr_trigger_result(const struct TriggerData *trigdata)
{
	return PointerGetDatum(TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ? trigdata->tg_trigtuple : NULL);
}

Oid
sdr_relid_if_exists(SdrRelation rel)
{
	static bool watching = false;

	sdr_relcache_watch(forget_relids, &watching);
	if (!OidIsValid(rel_oids[rel]))
		rel_oids[rel] = get_relname_relid(rel_names[rel], get_namespace_oid(SDR_SCHEMA, false));
	return rel_oids[rel];
}

Oid
sdr_relid(SdrRelation rel)
{
	Oid			relid = sdr_relid_if_exists(rel);

	if (!OidIsValid(relid))
		elog(ERROR, "sdr_creds: relation %s.%s is missing", SDR_SCHEMA, rel_names[rel]);
	return relid;
}

int
schema_seal_format(void)
{
	return get_attnum(sdr_relid(REL_CREDENTIALS), "seal_format") != InvalidAttrNumber
		? SEAL_FORMAT_2 : SEAL_FORMAT_1;
}

/* The credentials table's columns in order; seal_format (from 1.1) comes last. */
#define CRED_COLUMNS "id, org_id, provider, dsn, metadata, secrets, key_version, created_at, updated_at"
#define STORE_ARGS 10, {UUIDOID, UUIDOID, TEXTOID, TEXTOID, JSONBOID, BYTEAOID, INT4OID, TIMESTAMPTZOID, \
	TIMESTAMPTZOID, BOOLOID}
/* oauth_clients' columns in order, and the arguments of inserting or updating one */
#define CLIENT_COLUMNS "id, org_id, provider, token_url, client_id, auth_method, scopes, secret," \
	" key_version, created_at, updated_at"
#define CLIENT_ARGS 10, {UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, BYTEAOID, \
	INT4OID, TIMESTAMPTZOID}
/* What the refresher needs, after the credential's first columns (CRED_COLUMNS, seal_format). */
#define CLAIM_COLUMNS "c.id, c.org_id, c.provider, c.dsn, c.metadata, c.secrets, c.key_version," \
	" c.created_at, c.updated_at, c.seal_format, o.id, o.token_url, o.client_id, o.auth_method," \
	" o.scopes, o.secret, o.key_version, c.refresh_failures"
#define LE " OPERATOR(pg_catalog.<=) "

/*
 * Each statement; "v1" is its form for a database still at sdr_creds 1.0
 * (no seal_format column). Reads select "*", so a backend that began under
 * 1.0 sees the column once the upgrade adds it.
 */
static const struct
{
	const char *sql;
	const char *v1;				/* NULL: the same as sql */
	int			nargs;
	Oid			types[10];
}			defs[S_COUNT] = {
	[S_CRED_BY_ID] = {"SELECT * FROM sdr_creds.credentials WHERE id" EQ "$1", NULL, 1, {UUIDOID}},
	[S_CRED_LIST] = {"SELECT * FROM sdr_creds.credentials WHERE org_id" EQ "$1"
		" ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3", NULL, 3, {UUIDOID, INT4OID, INT4OID}},
	[S_CRED_LOCK] = {"SELECT id, created_at FROM sdr_creds.credentials"
		" WHERE org_id" EQ "$1 AND provider" EQ "$2 FOR UPDATE", NULL, 2, {UUIDOID, TEXTOID}},
	/* S_CRED_UPDATE takes S_CRED_INSERT's parameters; org_id and provider stay as they are. */
	[S_CRED_UPDATE] = {"UPDATE sdr_creds.credentials SET dsn = $4, metadata = $5, secrets = $6,"
		" key_version = $7, updated_at = $8, seal_format = 2, expires_at = $9, refreshable = $10,"
		" refresh_failures = 0, refresh_retry_at = NULL, refresh_requested_at = NULL,"
		" refresh_error = NULL WHERE id" EQ "$1",
		"UPDATE sdr_creds.credentials SET dsn = $4, metadata = $5, secrets = $6,"
		" key_version = $7, updated_at = $8 WHERE id" EQ "$1", STORE_ARGS},
	[S_CRED_INSERT] = {"INSERT INTO sdr_creds.credentials (" CRED_COLUMNS ", seal_format,"
		" expires_at, refreshable) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 2, $9, $10)"
		" ON CONFLICT (org_id, provider) DO NOTHING",
		"INSERT INTO sdr_creds.credentials (" CRED_COLUMNS ")"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (org_id, provider) DO NOTHING",
	STORE_ARGS},
	[S_CRED_DELETE] = {"DELETE FROM sdr_creds.credentials WHERE id" EQ "$1 AND org_id" EQ "$2", NULL,
	2, {UUIDOID, UUIDOID}},
	[S_ROTATE_BATCH] = {"SELECT * FROM sdr_creds.credentials WHERE key_version" NE "$1"
		" OR seal_format" NE "2 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
		"SELECT * FROM sdr_creds.credentials WHERE key_version" NE "$1"
		" ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED", 2, {INT4OID, INT4OID}},
	[S_ROTATE_UPDATE] = {"UPDATE sdr_creds.credentials SET secrets = $2, key_version = $3,"
		" seal_format = 2 WHERE id" EQ "$1",
		"UPDATE sdr_creds.credentials SET secrets = $2, key_version = $3"
		" WHERE id" EQ "$1", 3, {UUIDOID, BYTEAOID, INT4OID}},
	[S_ROTATE_REMAINING] = {"SELECT pg_catalog.count(*) FROM sdr_creds.credentials"
		" WHERE key_version" NE "$1 OR seal_format" NE "2",
		"SELECT pg_catalog.count(*) FROM sdr_creds.credentials"
		" WHERE key_version" NE "$1", 1, {INT4OID}},
	[S_API_KEY_INSERT] = {"INSERT INTO sdr_creds.api_keys (id, org_id, name, prefix, key_hash, expires_at)"
		" VALUES ($1, $2, $3, $4, $5, $6)", NULL,
	6, {UUIDOID, UUIDOID, TEXTOID, TEXTOID, BYTEAOID, TIMESTAMPTZOID}},
	[S_KEY_VERSION_RECORD] = {"INSERT INTO sdr_creds.key_versions (version, fingerprint)"
		" VALUES ($1, $2) ON CONFLICT (version) DO NOTHING", NULL, 2, {INT4OID, BYTEAOID}},
	[S_KEY_VERSION_MATCHES] = {"SELECT fingerprint" EQ "$2 FROM sdr_creds.key_versions"
		" WHERE version" EQ "$1", NULL, 2, {INT4OID, BYTEAOID}},
	[S_CLIENT_LOCK] = {"SELECT id, created_at FROM sdr_creds.oauth_clients"
		" WHERE org_id" EQ "$1 AND provider" EQ "$2 FOR UPDATE", NULL, 2, {UUIDOID, TEXTOID}},
	[S_CLIENT_INSERT] = {"INSERT INTO sdr_creds.oauth_clients (" CLIENT_COLUMNS ")"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)"
		" ON CONFLICT (org_id, provider) DO NOTHING", NULL, CLIENT_ARGS},
	[S_CLIENT_UPDATE] = {"UPDATE sdr_creds.oauth_clients SET token_url = $4, client_id = $5,"
		" auth_method = $6, scopes = $7, secret = $8, key_version = $9, updated_at = $10"
		" WHERE id" EQ "$1", NULL, CLIENT_ARGS},
	[S_CLIENT_DELETE] = {"DELETE FROM sdr_creds.oauth_clients WHERE org_id" EQ "$1"
		" AND provider" EQ "$2", NULL, 2, {UUIDOID, TEXTOID}},
	[S_CLIENT_LIST] = {"SELECT " CLIENT_COLUMNS " FROM sdr_creds.oauth_clients WHERE org_id" EQ "$1"
		" ORDER BY provider", NULL, 1, {UUIDOID}},
	/*
	 * Due: refreshable, expiring within the window or asked for, not backing
	 * off, with an OAuth client. SKIP LOCKED: a row another transaction holds
	 * (a refresher, a store) is left to it; a row refreshed since this
	 * statement's snapshot is re-checked and no longer due.
	 */
	[S_REFRESH_CLAIM] = {"SELECT " CLAIM_COLUMNS " FROM sdr_creds.credentials c"
		" JOIN sdr_creds.oauth_clients o ON o.org_id" EQ "c.org_id AND o.provider" EQ "c.provider"
		" WHERE c.refreshable AND (c.expires_at" LE "(pg_catalog.now() OPERATOR(pg_catalog.+)"
		" pg_catalog.make_interval(0, 0, 0, 0, 0, 0, $1)) OR c.refresh_requested_at IS NOT NULL)"
		" AND (c.refresh_retry_at IS NULL OR c.refresh_retry_at" LE "pg_catalog.now())"
		" ORDER BY c.refresh_requested_at NULLS LAST, c.expires_at LIMIT $2 FOR UPDATE OF c SKIP LOCKED",
	NULL, 2, {INT4OID, INT4OID}},
	[S_REFRESH_LOCK] = {"SELECT " CRED_COLUMNS ", seal_format, refresh_failures, expires_at"
		" FROM sdr_creds.credentials WHERE id" EQ "$1 FOR UPDATE NOWAIT", NULL, 1, {UUIDOID}},
	[S_REFRESH_STORE] = {"UPDATE sdr_creds.credentials SET metadata = $2, secrets = $3,"
		" key_version = $4, updated_at = $5, seal_format = 2, expires_at = $6, refreshable = $7,"
		" refresh_failures = $8, refresh_retry_at = $9, refresh_error = $10,"
		" refresh_requested_at = NULL WHERE id" EQ "$1", NULL,
	10, {UUIDOID, JSONBOID, BYTEAOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, BOOLOID, INT4OID,
	TIMESTAMPTZOID, TEXTOID}},
	[S_REFRESH_BACKOFF] = {"UPDATE sdr_creds.credentials SET refresh_failures = $2,"
		" refresh_retry_at = $3, refresh_error = $4, refresh_requested_at = NULL WHERE id" EQ "$1",
	NULL, 4, {UUIDOID, INT4OID, TIMESTAMPTZOID, TEXTOID}},
	/* No row: another transaction (a refresher) holds it. */
	[S_REFRESH_REQUEST_LOCK] = {"SELECT c.refreshable, EXISTS (SELECT FROM sdr_creds.oauth_clients o"
		" WHERE o.org_id" EQ "c.org_id AND o.provider" EQ "c.provider)"
		" FROM sdr_creds.credentials c WHERE c.id" EQ "$1 FOR UPDATE OF c SKIP LOCKED", NULL, 1, {UUIDOID}},
	[S_REFRESH_REQUEST_SET] = {"UPDATE sdr_creds.credentials SET refresh_requested_at = $2,"
		" refresh_retry_at = NULL WHERE id" EQ "$1", NULL, 2, {UUIDOID, TIMESTAMPTZOID}},
	[S_ISSUER_UPSERT] = {"INSERT INTO sdr_creds.issuers (issuer, jwks, audience, org_claim)"
		" VALUES ($1, $2, $3, $4) ON CONFLICT (issuer) DO UPDATE SET jwks = EXCLUDED.jwks,"
		" audience = EXCLUDED.audience, org_claim = EXCLUDED.org_claim, updated_at = pg_catalog.now()"
		" RETURNING pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(jwks::text, 'UTF8')), 'hex')",
	NULL, 4, {TEXTOID, JSONBOID, TEXTOID, TEXTOID}},
	[S_ISSUER_DELETE] = {"DELETE FROM sdr_creds.issuers WHERE issuer" EQ "$1", NULL, 1, {TEXTOID}},
};

static SPIPlanPtr plans[2][S_COUNT];	/* [v1 form?][statement] */

uint64
stmt_run_for(int seal_format, StatementId id, Datum *args, const char *nulls,
			 bool read_only, long limit)
{
	bool		v1 = seal_format == SEAL_FORMAT_1 && defs[id].v1 != NULL;
	SPIPlanPtr *plan = &plans[v1 ? 1 : 0][id];
	int			rc;

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(v1 ? defs[id].v1 : defs[id].sql, defs[id].nargs,
									(Oid *) defs[id].types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "sdr_creds: could not prepare statement %d: %s", id,
				 SPI_result_code_string(SPI_result));
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, args, nulls, read_only, limit);
	if (rc < 0)
		elog(ERROR, "sdr_creds: statement %d failed: %s", id, SPI_result_code_string(rc));
	return SPI_processed;
}

uint64
stmt_run(StatementId id, Datum *args, const char *nulls, bool read_only, long limit)
{
	Assert(defs[id].v1 == NULL);
	return stmt_run_for(SEAL_FORMAT_2, id, args, nulls, read_only, limit);
}
