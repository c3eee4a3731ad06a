/*
 * auth.c: who the caller is. Checks API keys (by SHA-256 hash lookup) and
 * HS256 JWTs (jwt.c), and sets the transaction's org context. Every failure is the
 * same PT401 error; none says why, and none echoes what was presented.
 */
#include "sdr_creds.h"

#include <sodium.h>
#include <time.h>

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "json.h"
#include "jwt.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "catalog/namespace.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "commands/trigger.h"

#define API_KEY_MAX_BYTES 256

/*
 * API keys this backend has verified, by hash, so a hit skips the lookup.
 *
 * Revocation must hold at once, in every session and isolation level:
 * - every change to sdr_creds.api_keys fires a trigger (api_keys_changed,
 *   ENABLE ALWAYS, so logical replication's apply fires it too) that
 *   invalidates the table's relcache entry in all backends when it commits,
 *   which empties this cache (key_cache_reset);
 * - every use first reads pending invalidations (AcceptInvalidationMessages),
 *   so a hit is never older than the last committed change;
 * - a miss reads the key's row with a fresh snapshot, not the statement's or
 *   the transaction's, so a revoke committed after the statement or the
 *   REPEATABLE READ transaction began is seen;
 * - a row read is cached only if no invalidation arrived while it was read
 *   (key_cache_generation), since that invalidation may be for a change the
 *   snapshot predates;
 * - expiry is checked against the clock on every use.
 */
typedef struct CachedKey
{
	unsigned char hash[API_KEY_HASH_BYTES];
	pg_uuid_t	org;
	TimestampTz expires_at;		/* DT_NOEND if none */
} CachedKey;

#define KEY_CACHE_MAX 4096

/* sdr_creds.api_keys's columns */
enum
{
	AK_ID = 1, AK_ORG_ID, AK_NAME, AK_PREFIX, AK_KEY_HASH, AK_CREATED_AT, AK_EXPIRES_AT, AK_REVOKED_AT
};

static HTAB *key_cache = NULL;
static Oid	key_table = InvalidOid;
static uint64 key_cache_generation = 0;

static void
key_cache_reset(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != key_table && key_table != InvalidOid)
		return;
	if (key_cache)
		hash_destroy(key_cache);
	key_cache = NULL;
	key_cache_generation++;
}

/* Registered before the first lookup, so no invalidation goes unseen. */
static void
key_cache_watch(void)
{
	static bool callback_registered = false;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(key_cache_reset, (Datum) 0);
		callback_registered = true;
	}
}

static HTAB *
key_cache_open(void)
{
	if (key_cache == NULL)
	{
		HASHCTL		ctl = {.keysize = API_KEY_HASH_BYTES, .entrysize = sizeof(CachedKey)};

		key_cache = hash_create("sdr_creds API keys", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	else if (hash_get_num_entries(key_cache) >= KEY_CACHE_MAX)
	{
		hash_destroy(key_cache);
		key_cache = NULL;
		return key_cache_open();
	}
	return key_cache;
}

static void pg_attribute_noreturn()
unauthorized(void)
{
	SDR_ERROR("401", MSG_UNAUTHORIZED);
}

static bool
has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Reads an API key's row by hash with a fresh snapshot: true and *org,
 * *expires_at if it exists and is not revoked (expiry is the caller's).
 */
static bool
api_key_read(const unsigned char *hash, pg_uuid_t *org, TimestampTz *expires_at)
{
	Oid			nsp = get_namespace_oid("sdr_creds", false);
	Relation	rel = table_open(get_relname_relid("api_keys", nsp), AccessShareLock);
	Relation	idx = index_open(get_relname_relid("api_keys_key_hash_key", nsp), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bytea	   *key = bytes_to_bytea(hash, API_KEY_HASH_BYTES);
	ScanKeyData skey;
	IndexScanDesc scan;
	Snapshot	snapshot;
	bool		found = false;

	key_table = RelationGetRelid(rel);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_BYTEAEQ, PointerGetDatum(key));
	scan = index_beginscan(rel, idx, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;

		(void) slot_getattr(slot, AK_REVOKED_AT, &isnull);
		if (isnull)
		{
			found = true;
			*org = *DatumGetUUIDP(slot_getattr(slot, AK_ORG_ID, &isnull));
			d = slot_getattr(slot, AK_EXPIRES_AT, &isnull);
			*expires_at = isnull ? DT_NOEND : DatumGetTimestampTz(d);
		}
	}
	index_endscan(scan);
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

static void
api_key_authenticate(const char *key, pg_uuid_t *org)
{
	size_t		len = strlen(key);
	unsigned char hash[API_KEY_HASH_BYTES];
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz expires_at;
	CachedKey  *cached;
	uint64		generation;

	if (len > API_KEY_MAX_BYTES || !(has_prefix(key, "sk_live_") || has_prefix(key, "sk_test_")))
		unauthorized();
	api_key_hash(key, len, hash);

	key_cache_watch();
	AcceptInvalidationMessages();
	cached = key_cache ? hash_search(key_cache, hash, HASH_FIND, NULL) : NULL;
	if (cached)
	{
		if (cached->expires_at <= now)
			unauthorized();
		*org = cached->org;
		return;
	}

	generation = key_cache_generation;
	if (!api_key_read(hash, org, &expires_at) || expires_at <= now)
		unauthorized();
	if (generation == key_cache_generation)
	{
		cached = hash_search(key_cache_open(), hash, HASH_ENTER, NULL);
		cached->org = *org;
		cached->expires_at = expires_at;
	}
}

static void
jwt_authenticate(const char *token, pg_uuid_t *org)
{
	const char *secret = sdr_jwt_secret;
	size_t		secret_len = secret ? strlen(secret) : 0;

	if (secret_len < JWT_SECRET_MIN_BYTES)
		ereport(DEBUG1, (errmsg("sdr_creds: JWT refused: sdr_creds.jwt_secret is unset or shorter than %d bytes",
								JWT_SECRET_MIN_BYTES)));
	if (!jwt_verify(token, strlen(token), secret, secret_len, sdr_jwt_audience,
					(double) time(NULL), org->data))
		unauthorized();
}

/* An API key (sk_live_/sk_test_) or a JWT; the context is the caller's. */
void
authenticate_credential(const char *credential, pg_uuid_t *org, Oid caller)
{
	redact_activity();
	if (has_prefix(credential, "sk_"))
		api_key_authenticate(credential, org);
	else
		jwt_authenticate(credential, org);
	org_context_set(org, caller);
}

/* X-API-Key wins when both are given; Authorization must be "Bearer <jwt>". */
void
authenticate_headers(const char *x_api_key, const char *authorization, pg_uuid_t *org,
					 Oid caller)
{
	redact_activity();
	if (x_api_key != NULL)
		api_key_authenticate(x_api_key, org);
	else if (authorization != NULL && pg_strncasecmp(authorization, "Bearer ", 7) == 0)
	{
		const char *t = authorization + 7;

		while (*t == ' ')
			t++;
		jwt_authenticate(t, org);
	}
	else
		unauthorized();
	org_context_set(org, caller);
}

/* A header from PostgREST's request.headers object, or NULL. */
static char *
header_value(Jsonb *headers, const char *name)
{
	JsonbValue	v;

	if (!getKeyJsonValueFromContainer(&headers->root, name, strlen(name), &v) || v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* Authenticates from PostgREST's request.headers setting, if there is one. */
static bool
authenticate_from_request(pg_uuid_t *org, Oid caller)
{
	const char *raw = GetConfigOption("request.headers", true, false);
	Jsonb	   *headers;

	if (raw == NULL || raw[0] == '\0')
		return false;
	headers = try_parse_jsonb(raw);
	if (headers == NULL || !JB_ROOT_IS_OBJECT(headers))
		unauthorized();
	authenticate_headers(header_value(headers, "x-api-key"),
						 header_value(headers, "authorization"), org, caller);
	return true;
}

/* The org this call's caller acts for; PT401 if it has none. */
void
require_org(pg_uuid_t *org, Oid caller)
{
	if (org_context_get(org, caller) || authenticate_from_request(org, caller))
		return;
	unauthorized();
}

PG_FUNCTION_INFO_V1(sdr_creds_authenticate);
Datum
sdr_creds_authenticate(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org = palloc(sizeof(pg_uuid_t));
	OwnerContext oc;

	if (PG_ARGISNULL(0))
		unauthorized();
	owner_enter(fcinfo, &oc);
	authenticate_credential(text_to_cstring(PG_GETARG_TEXT_PP(0)), org, oc.user);
	owner_leave(&oc);
	PG_RETURN_UUID_P(org);
}

PG_FUNCTION_INFO_V1(sdr_creds_authenticate_headers);
Datum
sdr_creds_authenticate_headers(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org = palloc(sizeof(pg_uuid_t));
	OwnerContext oc;

	owner_enter(fcinfo, &oc);
	authenticate_headers(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
						 PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
						 org, oc.user);
	owner_leave(&oc);
	PG_RETURN_UUID_P(org);
}

PG_FUNCTION_INFO_V1(sdr_creds_authenticate_request);
Datum
sdr_creds_authenticate_request(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org = palloc(sizeof(pg_uuid_t));
	OwnerContext oc;

	owner_enter(fcinfo, &oc);
	if (!authenticate_from_request(org, oc.user))
		unauthorized();
	owner_leave(&oc);
	PG_RETURN_UUID_P(org);
}

/*
 * Trigger on sdr_creds.api_keys (per row, and per statement for TRUNCATE):
 * any change empties every backend's key cache when it commits.
 */
PG_FUNCTION_INFO_V1(sdr_creds_api_keys_changed);
Datum
sdr_creds_api_keys_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "sdr_creds: api_keys_changed must be called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ? trigdata->tg_trigtuple : NULL);
}
