/*
 * auth.c: who the caller is. Checks API keys (by SHA-256 hash lookup) and
 * HS256 JWTs (constant-time signature check, exp/nbf with 30 s leeway, aud,
 * org_id claim), and sets the transaction's org context. Every failure is the
 * same PT401 error; none says why, and none echoes what was presented.
 */
#include "sdr_creds.h"

#include <sodium.h>
#include <time.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "json.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#define JWT_LEEWAY_SECONDS 30
#define JWT_MAX_BYTES 8192
#define API_KEY_MAX_BYTES 256
#define JWT_SECRET_MIN_BYTES 32

static SPIPlanPtr plan_api_key = NULL;

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

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Strict 8-4-4-4-12 hex UUID syntax. */
static bool
parse_uuid(const char *s, size_t len, pg_uuid_t *out)
{
	int			n = 0;

	if (len != 36)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		int			hi;
		int			lo;

		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		hi = hexval(s[i]);
		lo = (i + 1 < len) ? hexval(s[i + 1]) : -1;
		if (hi < 0 || lo < 0)
			return false;
		out->data[n++] = (hi << 4) | lo;
		i++;
	}
	return n == UUID_LEN;
}

static void
api_key_authenticate(const char *key, pg_uuid_t *org)
{
	size_t		len = strlen(key);
	unsigned char hash[API_KEY_HASH_BYTES];
	Datum		arg;
	bool		isnull;
	bool		ok;

	if (len > API_KEY_MAX_BYTES || !(has_prefix(key, "sk_live_") || has_prefix(key, "sk_test_")))
		unauthorized();
	api_key_hash(key, len, hash);

	SPI_connect();
	if (plan_api_key == NULL)
	{
		Oid			types[1] = {BYTEAOID};
		SPIPlanPtr	p = SPI_prepare("SELECT org_id FROM sdr_creds.api_keys"
									" WHERE key_hash = $1 AND revoked_at IS NULL"
									" AND (expires_at IS NULL OR expires_at > pg_catalog.now())",
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
		*org = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (!ok)
		unauthorized();
}

/* base64url (no padding) into a NUL-terminated palloc'd buffer; NULL if invalid. */
static char *
b64url_decode(const char *s, size_t len, size_t *outlen)
{
	char	   *out = palloc(len + 1);
	const char *end;

	if (len == 0 ||
		sodium_base642bin((unsigned char *) out, len, s, len, NULL, outlen, &end,
						  sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
		end != s + len)
		return NULL;
	out[*outlen] = '\0';
	return out;
}

/* A JSON object from decoded JWT segment text; NULL if it is not one. */
static Jsonb *
jwt_json(const char *s, size_t len)
{
	Jsonb	   *j;

	if (s == NULL || strlen(s) != len)
		return NULL;
	j = try_parse_jsonb(s);
	return (j && JB_ROOT_IS_OBJECT(j)) ? j : NULL;
}

static bool
claim(Jsonb *j, const char *key, JsonbValue *v)
{
	return getKeyJsonValueFromContainer(&j->root, key, strlen(key), v) != NULL;
}

static bool
claim_is(const JsonbValue *v, const char *s)
{
	return v->type == jbvString && v->val.string.len == (int) strlen(s) &&
		memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

static bool
claim_seconds(Jsonb *j, const char *key, double *out)
{
	JsonbValue	v;

	if (!claim(j, key, &v))
		return false;
	if (v.type != jbvNumeric)
		unauthorized();
	*out = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(v.val.numeric)));
	return true;
}

static bool
audience_matches(Jsonb *payload)
{
	JsonbValue	v;

	if (sdr_jwt_audience == NULL || sdr_jwt_audience[0] == '\0')
		return true;
	if (!claim(payload, "aud", &v))
		return false;
	if (v.type == jbvString)
		return claim_is(&v, sdr_jwt_audience);
	if (v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v.val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
			if (tok == WJB_ELEM && claim_is(&e, sdr_jwt_audience))
				return true;
	}
	return false;
}

static void
jwt_authenticate(const char *token, pg_uuid_t *org)
{
	size_t		len = strlen(token);
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (dot1 + 1 - token)) : NULL;
	const char *secret = sdr_jwt_secret;
	size_t		hlen;
	size_t		plen;
	size_t		slen;
	char	   *raw;
	char	   *sig;
	Jsonb	   *header;
	Jsonb	   *payload;
	JsonbValue	v;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	double		now = (double) time(NULL);
	double		t;

	if (secret == NULL || strlen(secret) < JWT_SECRET_MIN_BYTES)
	{
		ereport(DEBUG1, (errmsg("sdr_creds: JWT rejected: sdr_creds.jwt_secret is unset or shorter than %d bytes",
								JWT_SECRET_MIN_BYTES)));
		unauthorized();
	}
	if (len > JWT_MAX_BYTES || dot1 == NULL || dot2 == NULL ||
		memchr(dot2 + 1, '.', len - (dot2 + 1 - token)) != NULL)
		unauthorized();

	/* The header must name HS256, the one algorithm configured. */
	raw = b64url_decode(token, dot1 - token, &hlen);
	header = jwt_json(raw, hlen);
	if (header == NULL || !claim(header, "alg", &v) || !claim_is(&v, "HS256") ||
		claim(header, "crit", &v))
		unauthorized();

	/* Signature over "header.payload", compared in constant time. */
	sig = b64url_decode(dot2 + 1, len - (dot2 + 1 - token), &slen);
	if (sig == NULL || slen != sizeof(mac))
		unauthorized();
	crypto_auth_hmacsha256_init(&st, (const unsigned char *) secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) token, dot2 - token);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	if (sodium_memcmp(mac, sig, sizeof(mac)) != 0)
		unauthorized();

	raw = b64url_decode(dot1 + 1, dot2 - dot1 - 1, &plen);
	payload = jwt_json(raw, plen);
	if (payload == NULL)
		unauthorized();
	if (claim_seconds(payload, "exp", &t) && now >= t + JWT_LEEWAY_SECONDS)
		unauthorized();
	if (claim_seconds(payload, "nbf", &t) && now < t - JWT_LEEWAY_SECONDS)
		unauthorized();
	if (!audience_matches(payload))
		unauthorized();
	if (!claim(payload, "org_id", &v) || v.type != jbvString ||
		!parse_uuid(v.val.string.val, v.val.string.len, org))
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

static char *
header_value(Jsonb *headers, const char *name)
{
	JsonbValue	v;

	if (!claim(headers, name, &v) || v.type != jbvString)
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
	headers = jwt_json(raw, strlen(raw));
	if (headers == NULL)
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

	if (PG_ARGISNULL(0))
		unauthorized();
	authenticate_credential(text_to_cstring(PG_GETARG_TEXT_PP(0)), org);
	PG_RETURN_UUID_P(org);
}

PG_FUNCTION_INFO_V1(sdr_creds_authenticate_headers);
Datum
sdr_creds_authenticate_headers(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org = palloc(sizeof(pg_uuid_t));

	authenticate_headers(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
						 PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
						 org);
	PG_RETURN_UUID_P(org);
}

PG_FUNCTION_INFO_V1(sdr_creds_authenticate_request);
Datum
sdr_creds_authenticate_request(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org = palloc(sizeof(pg_uuid_t));

	if (!authenticate_from_request(org))
		unauthorized();
	PG_RETURN_UUID_P(org);
}
