/*
 * issuers.c: identity providers whose tokens authenticate: their public keys
 * (set_issuer, delete_issuer; list_issuers is SQL), and checking a token
 * signed with one of them (jwt.c reads it, jwk.c checks its signature).
 *
 * Each backend keeps the issuers it read (their JWKS parsed, the keys built
 * once) and the tokens it verified (by SHA-256 of the whole token, until the
 * token's exp). A change of a key takes effect at once, as for API keys
 * (api_keys.c): every change of sdr_creds.issuers fires a trigger
 * (issuers_changed, ENABLE ALWAYS) that invalidates the table's relcache
 * entry in all backends at commit, and on standbys at replay, which empties
 * both caches; every check first reads pending invalidations; the table is
 * read with a fresh snapshot; and what is read is kept only if no
 * invalidation arrived while it was read.
 */
#include "issuers.h"

#include <sodium.h>

#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "json.h"
#include "jwk.h"
#include "monitor.h"
#include "org_context.h"
#include "results.h"
#include "statements.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#define TOKEN_CACHE_MAX 4096
#define JWKS_MAX_BYTES 65536
#define ORG_CLAIM_MAX 256

/* sdr_creds.issuers's columns */
enum
{
	IS_ISSUER = 1, IS_JWKS, IS_AUDIENCE, IS_ORG_CLAIM
};

const char *const issuer_token_reasons[ISSUER_TOKEN_COUNT] = {
	[ISSUER_TOKEN_VALID] = "-", [ISSUER_TOKEN_HS256] = "invalid_jwt",
	[ISSUER_TOKEN_INVALID] = "invalid_jwt", [ISSUER_TOKEN_UNKNOWN_ISSUER] = "unknown_issuer",
	[ISSUER_TOKEN_UNKNOWN_KID] = "unknown_kid", [ISSUER_TOKEN_ALG_MISMATCH] = "alg_mismatch",
	[ISSUER_TOKEN_BAD_SIGNATURE] = "bad_signature", [ISSUER_TOKEN_BAD_CLAIMS] = "invalid_claims"
};

typedef struct Issuer
{
	char	   *issuer;
	char	   *audience;		/* NULL: not checked */
	char	   *org_claim;
	Jwks		jwks;
} Issuer;

/* The issuers as read, in their own memory context. */
typedef struct IssuerSet
{
	MemoryContext cxt;
	int			n;
	Issuer	   *issuers;
} IssuerSet;

typedef struct CachedToken
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	pg_uuid_t	org;
	double		refused_after;	/* the token's exp with the leeway, or -1 */
	char		sub[JWT_SUB_MAX + 1];
} CachedToken;

static IssuerSet *issuer_set = NULL;
static HTAB *token_cache = NULL;
static uint64 issuers_generation = 0;
static bool issuers_watched = false;	/* issuers_reset registered */

static void
issuer_set_free(IssuerSet *set)
{
	for (int i = 0; i < set->n; i++)
		jwks_free(&set->issuers[i].jwks);
	MemoryContextDelete(set->cxt);
}

static void
issuers_reset(Datum arg, Oid relid)
{
	if (!sdr_relid_concerned(REL_ISSUERS, relid))
		return;
	if (issuer_set)
		issuer_set_free(issuer_set);
	issuer_set = NULL;
	if (token_cache)
		hash_destroy(token_cache);
	token_cache = NULL;
	issuers_generation++;
}

static char *
text_column(TupleTableSlot *slot, int att)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Reads every issuer with a fresh snapshot (none before sdr_creds 1.2). */
static IssuerSet *
issuers_read(void)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "sdr_creds issuers",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	IssuerSet  *set = palloc0(sizeof(IssuerSet));
	Oid			relid = sdr_relid_if_exists(REL_ISSUERS);
	int			cap = 4;

	set->cxt = cxt;
	set->issuers = palloc0(cap * sizeof(Issuer));
	if (OidIsValid(relid))
	{
		Relation	rel = table_open(relid, AccessShareLock);
		Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
		TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
		TupleTableSlot *slot = table_slot_create(rel, NULL);

		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			Issuer	   *is;
			bool		isnull;
			Jsonb	   *jwks = DatumGetJsonbP(slot_getattr(slot, IS_JWKS, &isnull));
			char	   *text = JsonbToCString(NULL, &jwks->root, VARSIZE(jwks));
			int			index;

			if (set->n == cap)
			{
				cap *= 2;
				set->issuers = repalloc(set->issuers, cap * sizeof(Issuer));
			}
			is = &set->issuers[set->n];
			/* stored only after set_issuer's check: a JWKS refused now is left out */
			if (jwks_parse(text, strlen(text), &is->jwks, &index) != NULL)
				continue;
			is->issuer = text_column(slot, IS_ISSUER);
			is->audience = text_column(slot, IS_AUDIENCE);
			is->org_claim = text_column(slot, IS_ORG_CLAIM);
			set->n++;
		}
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
		UnregisterSnapshot(snapshot);
		table_close(rel, AccessShareLock);
	}
	MemoryContextSwitchTo(old);
	return set;
}

static const Issuer *
issuer_named(const IssuerSet *set, const char *iss)
{
	for (int i = 0; i < set->n; i++)
		if (strcmp(set->issuers[i].issuer, iss) == 0)
			return &set->issuers[i];
	return NULL;
}

static void
token_cache_add(const CachedToken *t)
{
	HASHCTL		ctl = {.keysize = crypto_hash_sha256_BYTES, .entrysize = sizeof(CachedToken)};

	if (token_cache && hash_get_num_entries(token_cache) >= TOKEN_CACHE_MAX)
	{
		hash_destroy(token_cache);
		token_cache = NULL;
	}
	if (token_cache == NULL)
		token_cache = hash_create("sdr_creds verified tokens", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	*(CachedToken *) hash_search(token_cache, t->hash, HASH_ENTER, NULL) = *t;
}

/* The token checked against its issuer's keys and claims, into *t. */
static IssuerTokenCheck
token_check(const char *token, size_t len, const IssuerSet *set, double now, CachedToken *t)
{
	JwtParts	parts;
	JwsAlg		alg;
	const Issuer *issuer;
	const Jwk  *key;
	IssuerTokenCheck check = ISSUER_TOKEN_INVALID;

	if (!jwt_split(token, len, &parts))
		return ISSUER_TOKEN_INVALID;
	alg = jws_alg_named(parts.alg);
	if (strcmp(parts.alg, "HS256") == 0)
		check = ISSUER_TOKEN_HS256;	/* sdr_creds.jwt_secret's, never an issuer's key */
	else if (alg == JWS_NONE || parts.crit || parts.key_in_header ||
			 (parts.has_kid && parts.kid[0] == '\0'))
		check = ISSUER_TOKEN_INVALID;
	else if ((issuer = issuer_named(set, parts.iss)) == NULL)
		check = ISSUER_TOKEN_UNKNOWN_ISSUER;
	else if ((key = jwks_find(&issuer->jwks, parts.has_kid ? parts.kid : NULL)) == NULL)
		check = ISSUER_TOKEN_UNKNOWN_KID;
	else if (!jwk_fits(key, alg))
		check = ISSUER_TOKEN_ALG_MISMATCH;
	else if (!jws_verify(key, alg, (const unsigned char *) token, parts.signed_len,
						 parts.sig, parts.sig_len))
		check = ISSUER_TOKEN_BAD_SIGNATURE;
	else if (!jwt_claims(parts.payload, parts.payload_len, issuer->audience, issuer->org_claim,
						 now, t->org.data, t->sub, &t->refused_after))
		check = ISSUER_TOKEN_BAD_CLAIMS;
	else
		check = ISSUER_TOKEN_VALID;
	jwt_parts_free(&parts);
	return check;
}

IssuerTokenCheck
issuer_token_verify(const char *token, size_t len, double now, pg_uuid_t *org, char *sub)
{
	CachedToken t = {0};
	CachedToken *cached;
	IssuerSet  *set;
	uint64		generation;
	IssuerTokenCheck check;

	if (len > JWT_MAX_BYTES)
		return ISSUER_TOKEN_INVALID;
	crypto_hash_sha256(t.hash, (const unsigned char *) token, len);
	sdr_relcache_watch(issuers_reset, &issuers_watched);
	AcceptInvalidationMessages();
	cached = token_cache ? hash_search(token_cache, t.hash, HASH_FIND, NULL) : NULL;
	if (cached && (cached->refused_after < 0 || now < cached->refused_after))
	{
		*org = cached->org;
		strcpy(sub, cached->sub);
		return ISSUER_TOKEN_VALID;
	}
	if (cached)
		hash_search(token_cache, t.hash, HASH_REMOVE, NULL);

	generation = issuers_generation;
	set = issuer_set ? issuer_set : issuers_read();
	check = token_check(token, len, set, now, &t);
	if (set != issuer_set)
	{
		if (generation == issuers_generation && issuer_set == NULL)
			issuer_set = set;	/* no change arrived while it was read */
		else
			issuer_set_free(set);
	}
	if (check != ISSUER_TOKEN_VALID)
		return check;
	if (generation == issuers_generation)
		token_cache_add(&t);
	*org = t.org;
	strcpy(sub, t.sub);
	return ISSUER_TOKEN_VALID;
}

/* set_issuer's checks of its arguments: PT422 on the first bad one. */
static void
check_issuer_args(const char *issuer, const char *audience, const char *org_claim)
{
	if (issuer == NULL || issuer[0] == '\0' || strlen(issuer) > JWT_ISS_MAX)
		SDR_ERROR("422", "issuer must be a non-empty string of at most %d bytes", JWT_ISS_MAX);
	if (audience && (audience[0] == '\0' || strlen(audience) > JWT_ISS_MAX))
		SDR_ERROR("422", "audience must be NULL or a non-empty string of at most %d bytes",
				  JWT_ISS_MAX);
	if (org_claim == NULL || org_claim[0] == '\0' || strlen(org_claim) > ORG_CLAIM_MAX)
		SDR_ERROR("422", "org_claim must be a claim name or dotted path of at most %d bytes",
				  ORG_CLAIM_MAX);
}

/* The JWKS's key ids as a JSON array (null for a key without one). */
static char *
key_ids_json(const Jwks *jwks)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	for (int i = 0; i < jwks->nkeys; i++)
	{
		if (i > 0)
			appendStringInfoString(&out, ", ");
		if (jwks->keys[i].has_kid)
			append_json_string(&out, jwks->keys[i].kid, strlen(jwks->keys[i].kid));
		else
			appendStringInfoString(&out, "null");
	}
	appendStringInfoChar(&out, ']');
	return out.data;
}

/* set_issuer's result: the issuer as list_issuers() shows it, without the JWKS. */
static text *
issuer_json(const char *issuer, const char *key_ids, const char *sha256, const char *audience,
			const char *org_claim)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"issuer\": ");
	append_json_string(&out, issuer, strlen(issuer));
	appendStringInfo(&out, ", \"key_ids\": %s, \"jwks_sha256\": ", key_ids);
	append_json_string(&out, sha256, strlen(sha256));
	appendStringInfoString(&out, ", \"audience\": ");
	if (audience)
		append_json_string(&out, audience, strlen(audience));
	else
		appendStringInfoString(&out, "null");
	appendStringInfoString(&out, ", \"org_claim\": ");
	append_json_string(&out, org_claim, strlen(org_claim));
	appendStringInfoChar(&out, '}');
	return json_result(&out);
}

PG_FUNCTION_INFO_V1(sdr_creds_set_issuer);
Datum
sdr_creds_set_issuer(PG_FUNCTION_ARGS)
{
	char	   *issuer = text_arg(fcinfo, 0);
	char	   *audience = text_arg(fcinfo, 2);
	char	   *org_claim = text_arg(fcinfo, 3);
	Jsonb	   *jwks_arg;
	char	   *jwks_text;
	Jwks		jwks;
	const char *why;
	int			index;
	Datum		args[4];
	char		nulls[4] = "    ";
	char	   *key_ids;
	char	   *sha256;
	MemoryContext caller = CurrentMemoryContext;
	OwnerContext oc;

	monitor_call_begin(ACT_SET_ISSUER);
	monitor_call_as_admin();
	check_issuer_args(issuer, audience, org_claim);
	if (PG_ARGISNULL(1))
		SDR_ERROR("422", "jwks must be a JWKS object ({\"keys\": [...]})");
	jwks_arg = PG_GETARG_JSONB_P(1);
	jwks_text = JsonbToCString(NULL, &jwks_arg->root, VARSIZE(jwks_arg));
	if (strlen(jwks_text) > JWKS_MAX_BYTES)
		SDR_ERROR("422", "jwks must be at most %d bytes", JWKS_MAX_BYTES);
	why = jwks_parse(jwks_text, strlen(jwks_text), &jwks, &index);
	if (why && index > 0)
		SDR_ERROR("422", "jwks refused: key %d: %s", index, why);
	if (why)
		SDR_ERROR("422", "jwks refused: %s", why);
	key_ids = key_ids_json(&jwks);
	jwks_free(&jwks);

	args[0] = CStringGetTextDatum(issuer);
	args[1] = JsonbPGetDatum(jwks_arg);
	args[2] = audience ? CStringGetTextDatum(audience) : (Datum) 0;
	args[3] = CStringGetTextDatum(org_claim);
	if (audience == NULL)
		nulls[2] = 'n';
	owner_enter(fcinfo, &oc);
	SPI_connect();
	stmt_run(S_ISSUER_UPSERT, args, nulls, false, 0);
	sha256 = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	owner_leave(&oc);
	monitor_call_end();
	PG_RETURN_TEXT_P(issuer_json(issuer, key_ids, sha256, audience, org_claim));
}

PG_FUNCTION_INFO_V1(sdr_creds_delete_issuer);
Datum
sdr_creds_delete_issuer(PG_FUNCTION_ARGS)
{
	char	   *issuer = text_arg(fcinfo, 0);
	Datum		args[1];
	uint64		n = 0;
	OwnerContext oc;

	monitor_call_begin(ACT_DELETE_ISSUER);
	monitor_call_as_admin();
	if (issuer != NULL)
	{
		args[0] = CStringGetTextDatum(issuer);
		owner_enter(fcinfo, &oc);
		SPI_connect();
		n = stmt_run(S_ISSUER_DELETE, args, NULL, false, 0);
		SPI_finish();
		owner_leave(&oc);
	}
	monitor_call_end();
	PG_RETURN_BOOL(n > 0);
}

/*
 * Trigger on sdr_creds.issuers (per row, and per statement for TRUNCATE): any
 * change empties every backend's issuer and token caches when it commits.
 */
PG_FUNCTION_INFO_V1(sdr_creds_issuers_changed);
Datum
sdr_creds_issuers_changed(PG_FUNCTION_ARGS)
{
	return sdr_trigger_result(sdr_invalidating_trigger(fcinfo, "sdr_creds.issuers_changed()"));
}
