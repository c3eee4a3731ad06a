/*
 * auth.c: who the caller is. Checks API keys (by SHA-256 hash lookup) and
 * HS256 JWTs (jwt.c), and sets the transaction's org context. Every failure is the
 * same PT401 error; none says why, and none echoes what was presented.
 */
#include "sdr_creds.h"

#include <sodium.h>
#include <time.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "json.h"
#include "jwt.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "catalog/namespace.h"
#include "utils/rel.h"
#include "commands/trigger.h"

#define API_KEY_MAX_BYTES 256

static SPIPlanPtr plan_api_key = NULL;

/*
 * API keys this backend has verified, by hash, so a hit skips the lookup.
 * Every change to sdr_creds.api_keys fires a trigger (api_keys_changed) that
 * invalidates the table's relcache entry in all backends when it commits;
 * that empties this cache before their next transaction uses it, so a revoked
 * key stops working at once. Expiry is checked on every use.
 */
typedef struct CachedKey
{
	unsigned char hash[API_KEY_HASH_BYTES];
	pg_uuid_t	org;
	TimestampTz expires_at;		/* DT_NOEND if none */
} CachedKey;

#define KEY_CACHE_MAX 4096

static HTAB *key_cache = NULL;
static Oid	key_table = InvalidOid;

static void
key_cache_reset(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != key_table)
		return;
	if (key_cache)
		hash_destroy(key_cache);
	key_cache = NULL;
	key_table = InvalidOid;
}

static CachedKey *
key_cache_find(const unsigned char *hash, bool create)
{
	static bool callback_registered = false;
	bool		found;
	CachedKey  *k;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(key_cache_reset, (Datum) 0);
		callback_registered = true;
	}
	if (key_cache == NULL)
	{
		HASHCTL		ctl = {.keysize = API_KEY_HASH_BYTES, .entrysize = sizeof(CachedKey)};

		if (!create)
			return NULL;
		key_table = get_relname_relid("api_keys", get_namespace_oid("sdr_creds", false));
		key_cache = hash_create("sdr_creds API keys", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	if (create && hash_get_num_entries(key_cache) >= KEY_CACHE_MAX)
	{
		key_cache_reset((Datum) 0, InvalidOid);
		return key_cache_find(hash, create);
	}
	k = hash_search(key_cache, hash, create ? HASH_ENTER : HASH_FIND, &found);
	return k;
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

static void
api_key_authenticate(const char *key, pg_uuid_t *org)
{
	size_t		len = strlen(key);
	unsigned char hash[API_KEY_HASH_BYTES];
	Datum		arg;
	bool		isnull;
	bool		ok;
	CachedKey  *cached;

	if (len > API_KEY_MAX_BYTES || !(has_prefix(key, "sk_live_") || has_prefix(key, "sk_test_")))
		unauthorized();
	api_key_hash(key, len, hash);

	cached = key_cache_find(hash, false);
	if (cached && cached->expires_at > GetCurrentTransactionStartTimestamp())
	{
		*org = cached->org;
		return;
	}

	SPI_connect();
	if (plan_api_key == NULL)
	{
		Oid			types[1] = {BYTEAOID};
		SPIPlanPtr	p = SPI_prepare("SELECT org_id, COALESCE(expires_at, 'infinity'::pg_catalog.timestamptz) FROM sdr_creds.api_keys"
									" WHERE key_hash" EQ "$1 AND revoked_at IS NULL"
									" AND (expires_at IS NULL OR expires_at" GT "pg_catalog.now())",
									1, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "sdr_creds: could not prepare the API key lookup");
		plan_api_key = p;
	}
	arg = PointerGetDatum(bytes_to_bytea(hash, sizeof(hash)));
	if (SPI_execute_plan(plan_api_key, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "sdr_creds: API key lookup failed");
	ok = SPI_processed == 1;
	if (ok)
	{
		HeapTuple	row = SPI_tuptable->vals[0];

		*org = *DatumGetUUIDP(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
		cached = key_cache_find(hash, true);
		cached->org = *org;
		cached->expires_at = DatumGetTimestampTz(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_finish();
	if (!ok)
		unauthorized();
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

/* An API key (sk_live_/sk_test_) or a JWT. */
void
authenticate_credential(const char *credential, pg_uuid_t *org)
{
	redact_activity();
	if (has_prefix(credential, "sk_"))
		api_key_authenticate(credential, org);
	else
		jwt_authenticate(credential, org);
	org_context_set(org);
}

/* X-API-Key wins when both are given; Authorization must be "Bearer <jwt>". */
void
authenticate_headers(const char *x_api_key, const char *authorization, pg_uuid_t *org)
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
	org_context_set(org);
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
authenticate_from_request(pg_uuid_t *org)
{
	const char *raw = GetConfigOption("request.headers", true, false);
	Jsonb	   *headers;

	if (raw == NULL || raw[0] == '\0')
		return false;
	headers = try_parse_jsonb(raw);
	if (headers == NULL || !JB_ROOT_IS_OBJECT(headers))
		unauthorized();
	authenticate_headers(header_value(headers, "x-api-key"),
						 header_value(headers, "authorization"), org);
	return true;
}

/* The org this call acts for; PT401 if the transaction has none. */
void
require_org(pg_uuid_t *org)
{
	if (org_context_get(org) || authenticate_from_request(org))
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
	authenticate_credential(text_to_cstring(PG_GETARG_TEXT_PP(0)), org);
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
						 org);
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
	if (!authenticate_from_request(org))
		unauthorized();
	owner_leave(&oc);
	PG_RETURN_UUID_P(org);
}

/* Trigger on sdr_creds.api_keys: any change empties every backend's key cache. */
PG_FUNCTION_INFO_V1(sdr_creds_api_keys_changed);
Datum
sdr_creds_api_keys_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "sdr_creds: api_keys_changed must be called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
