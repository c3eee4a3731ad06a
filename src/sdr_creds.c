/*
 * sdr_creds.c: module start-up (settings, libsodium), the per-transaction org
 * context and the small SQL functions around it.
 */
#include "sdr_creds.h"

#include <sodium.h>

#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/syscache.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

char	   *sdr_keyring_file = NULL;
char	   *sdr_jwt_secret = NULL;
char	   *sdr_jwt_audience = NULL;

/*
 * The org this transaction acts for. It lives in backend memory, not in a
 * setting, so SET/set_config cannot forge it; only org_context_set() writes it.
 */
static bool org_valid = false;
static pg_uuid_t org_current;

void		_PG_init(void);

void
org_context_set(const pg_uuid_t *org)
{
	org_current = *org;
	org_valid = true;
}

bool
org_context_get(pg_uuid_t *org)
{
	if (org_valid && org)
		*org = org_current;
	return org_valid;
}

static void
org_context_clear(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			org_valid = false;
			memset(&org_current, 0, sizeof(org_current));
			break;
		default:
			break;
	}
}

void
_PG_init(void)
{
	if (sodium_init() < 0)
		ereport(ERROR, (errmsg("sdr_creds: libsodium could not be initialised")));

	DefineCustomStringVariable("sdr_creds.keyring_file",
							   "Path of the keyring file (one \"version hex-key\" per line).",
							   "Keep it outside the data directory, readable only by the server.",
							   &sdr_keyring_file, NULL, PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomStringVariable("sdr_creds.jwt_secret",
							   "HS256 secret for Bearer JWTs (at least 32 bytes); empty disables JWTs.",
							   NULL, &sdr_jwt_secret, NULL, PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("sdr_creds.jwt_audience",
							   "When set, JWTs must carry this aud claim.",
							   NULL, &sdr_jwt_audience, NULL, PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("sdr_creds");
#else
	EmitWarningsOnPlaceholders("sdr_creds");
#endif

	RegisterXactCallback(org_context_clear, NULL);
	redact_init();
}

/*
 * Runs the rest of a call with the privileges of the function's owner (the
 * superuser who installed the extension), as SECURITY DEFINER would. The API
 * functions do this in C rather than with SECURITY DEFINER ... SET
 * search_path, whose per-call setting work costs more than the rest of a
 * lookup: every statement they run names its schema, functions and operators
 * (EQ, NE, GT), so no search_path can redirect them. An error restores the
 * caller's identity with the (sub)transaction's abort.
 */
void
owner_enter(FunctionCallInfo fcinfo, OwnerContext *ctx)
{
	Oid		   *owner = fcinfo->flinfo->fn_extra;

	if (owner == NULL)
	{
		HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "sdr_creds: cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
		owner = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));
		*owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
		ReleaseSysCache(tup);
		fcinfo->flinfo->fn_extra = owner;
	}
	GetUserIdAndSecContext(&ctx->user, &ctx->sec_context);
	SetUserIdAndSecContext(*owner, ctx->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
owner_leave(const OwnerContext *ctx)
{
	SetUserIdAndSecContext(ctx->user, ctx->sec_context);
}

/* A random (version 4) UUID. */
void
new_uuid(pg_uuid_t *uuid)
{
	randombytes_buf(uuid->data, UUID_LEN);
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
}

/* ^[a-z0-9][a-z0-9_.-]{0,63}$ */
bool
provider_is_valid(const char *p, size_t len)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = p[i];
		bool		alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

PG_FUNCTION_INFO_V1(sdr_creds_current_org_id);
Datum
sdr_creds_current_org_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org = palloc(sizeof(pg_uuid_t));

	if (!org_context_get(org))
		PG_RETURN_NULL();
	PG_RETURN_UUID_P(org);
}

/* The trusted-service right is EXECUTE on this function; PUBLIC has none. */
PG_FUNCTION_INFO_V1(sdr_creds_act_as);
Datum
sdr_creds_act_as(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org = PG_GETARG_UUID_P(0);

	org_context_set(org);
	PG_RETURN_UUID_P(org);
}
