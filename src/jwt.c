/*
 * jwt.c: verifies HS256 JSON Web Tokens.
 *
 * Plain C over libsodium (base64url, HMAC-SHA256, constant-time compare) and
 * PostgreSQL's JSON lexer (common/jsonapi.h), which never throws: the same
 * code runs in the backend and, built with -DFRONTEND, in the fuzzer.
 *
 * Accepted: exactly three non-empty segments; a header whose alg is "HS256"
 * and that has no "crit"; a valid signature; a payload object without
 * duplicate top-level keys whose exp/nbf (if present) are numbers within the
 * leeway, whose aud contains the configured audience (if one is), and whose
 * org_id is a UUID string. Everything else is refused, for one reason only.
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <sodium.h>

#include "common/jsonapi.h"
#include "jwt.h"
#include "mb/pg_wchar.h"
#include "hex.h"

#if PG_VERSION_NUM >= 160000
#define CALLBACK JsonParseErrorType
#define DONE return JSON_SUCCESS
#else
#define CALLBACK void
#define DONE return
#endif

/* The fields read from a header or payload; each seen at most once. */
typedef enum
{
	F_OTHER, F_ALG, F_CRIT, F_EXP, F_NBF, F_AUD, F_ORG, F_SUB, F_COUNT
} Field;

typedef struct Claims
{
	JsonLexContext *lex;
	const char *audience;
	bool		root_object;
	bool		bad;			/* a claim of the wrong type or a duplicate */
	Field		current;
	bool		seen[F_COUNT];
	bool		alg_hs256;
	double		exp;
	double		nbf;
	bool		aud_match;
	bool		org_ok;
	char		sub[JWT_SUB_MAX + 1];	/* "" if none, "?" if not a short plain string */
	unsigned char org[JWT_ORG_BYTES];
} Claims;

static const char *const field_names[F_COUNT] = {
	[F_ALG] = "alg", [F_CRIT] = "crit", [F_EXP] = "exp", [F_NBF] = "nbf",
	[F_AUD] = "aud", [F_ORG] = "org_id", [F_SUB] = "sub"
};

static CALLBACK
on_object_start(void *state)
{
	Claims	   *c = state;

	if (c->lex->lex_level == 0)
		c->root_object = true;
	else if (c->lex->lex_level == 1 && c->current != F_OTHER && c->current != F_CRIT)
		c->bad = true;			/* a claim we read is an object */
	DONE;
}

static CALLBACK
on_array_start(void *state)
{
	Claims	   *c = state;

	if (c->lex->lex_level == 1 && c->current != F_OTHER && c->current != F_CRIT &&
		c->current != F_AUD)
		c->bad = true;
	DONE;
}

static CALLBACK
on_field_start(void *state, char *fname, bool isnull)
{
	Claims	   *c = state;

	if (c->lex->lex_level == 1)
	{
		c->current = F_OTHER;
		for (int f = F_OTHER + 1; f < F_COUNT; f++)
			if (strcmp(fname, field_names[f]) == 0)
				c->current = (Field) f;
		if (c->current != F_OTHER && c->seen[c->current])
			c->bad = true;		/* duplicate claim */
		c->seen[c->current] = true;
	}
	pfree(fname);
	DONE;
}

/*
 * The sub claim, kept to name the caller in audit lines: copied when it is a
 * string of at most JWT_SUB_MAX characters from [A-Za-z0-9._@:+-], else "?".
 */
static void
read_sub(Claims *c, const char *token, JsonTokenType type)
{
	size_t		len = strlen(token);

	strcpy(c->sub, "?");
	if (type != JSON_TOKEN_STRING || len == 0 || len > JWT_SUB_MAX)
		return;
	for (size_t i = 0; i < len; i++)
	{
		char		ch = token[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			  strchr("._@:+-", ch) != NULL))
			return;
	}
	memcpy(c->sub, token, len + 1);
}

static void
read_scalar(Claims *c, Field f, const char *token, JsonTokenType type)
{
	switch (f)
	{
		case F_ALG:
			c->alg_hs256 = (type == JSON_TOKEN_STRING && strcmp(token, "HS256") == 0);
			break;
		case F_EXP:
		case F_NBF:
			if (type != JSON_TOKEN_NUMBER)
				c->bad = true;
			else
				*(f == F_EXP ? &c->exp : &c->nbf) = strtod(token, NULL);
			break;
		case F_AUD:
			if (type != JSON_TOKEN_STRING)
				c->bad = true;
			else if (c->audience && strcmp(token, c->audience) == 0)
				c->aud_match = true;
			break;
		case F_ORG:
			c->org_ok = (type == JSON_TOKEN_STRING &&
						 uuid_parse(token, strlen(token), c->org));
			break;
		case F_SUB:
			read_sub(c, token, type);
			break;
		default:
			break;
	}
}

static CALLBACK
on_scalar(void *state, char *token, JsonTokenType type)
{
	Claims	   *c = state;
	int			level = c->lex->lex_level;

	if (level == 1 || (level == 2 && c->current == F_AUD))
		read_scalar(c, c->current, token, type);
	pfree(token);
	DONE;
}

/* Parses a decoded segment as a JSON object into c; false if it is not one. */
static bool
parse_claims(char *json, size_t len, Claims *c)
{
	JsonSemAction sem = {0};
	JsonParseErrorType rc;

	sem.semstate = c;
	sem.object_start = on_object_start;
	sem.array_start = on_array_start;
	sem.object_field_start = on_field_start;
	sem.scalar = on_scalar;
#if PG_VERSION_NUM >= 170000
	c->lex = makeJsonLexContextCstringLen(NULL, json, len, PG_UTF8, true);
#else
	c->lex = makeJsonLexContextCstringLen(json, (int) len, PG_UTF8, true);
#endif
	rc = pg_parse_json(c->lex, &sem);
#if PG_VERSION_NUM >= 170000
	freeJsonLexContext(c->lex);
#else
	if (c->lex->strval)
	{
		pfree(c->lex->strval->data);
		pfree(c->lex->strval);
	}
	pfree(c->lex);
#endif
	c->lex = NULL;
	return rc == JSON_SUCCESS && c->root_object && !c->bad;
}

/* base64url without padding into a palloc'd buffer; NULL if invalid or empty. */
static char *
b64url(const char *s, size_t len, size_t *outlen)
{
	char	   *out;
	const char *end;

	if (len == 0)
		return NULL;
	out = palloc(len + 1);
	if (sodium_base642bin((unsigned char *) out, len, s, len, NULL, outlen, &end,
						  sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || end != s + len)
	{
		pfree(out);
		return NULL;
	}
	return out;
}

static bool
segment_claims(const char *s, size_t len, Claims *c)
{
	size_t		n;
	char	   *json = b64url(s, len, &n);
	bool		ok;

	if (json == NULL)
		return false;
	ok = parse_claims(json, n, c);
	pfree(json);
	return ok;
}

static bool
signature_valid(const char *token, size_t signed_len, const char *sig, size_t sig_len,
				const char *secret, size_t secret_len)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	size_t		n;
	char	   *given = b64url(sig, sig_len, &n);
	bool		ok;

	if (given == NULL)
		return false;
	crypto_auth_hmacsha256_init(&st, (const unsigned char *) secret, secret_len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) token, signed_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	ok = (n == sizeof(mac) && sodium_memcmp(mac, given, sizeof(mac)) == 0);
	pfree(given);
	return ok;
}

bool
jwt_verify(const char *token, size_t len, const char *secret, size_t secret_len,
		   const char *audience, double now, unsigned char *org, char *sub)
{
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (dot1 + 1 - token)) : NULL;
	const char *sig = dot2 ? dot2 + 1 : NULL;
	Claims		header = {0};
	Claims		payload = {0};

	if (secret_len < JWT_SECRET_MIN_BYTES || len > JWT_MAX_BYTES || dot2 == NULL ||
		memchr(sig, '.', len - (sig - token)) != NULL)
		return false;

	/* The header must name HS256, the one algorithm configured. */
	if (!segment_claims(token, dot1 - token, &header) || !header.alg_hs256 || header.seen[F_CRIT])
		return false;
	if (!signature_valid(token, dot2 - token, sig, len - (sig - token), secret, secret_len))
		return false;

	payload.audience = (audience && audience[0]) ? audience : NULL;
	if (!segment_claims(dot1 + 1, dot2 - dot1 - 1, &payload))
		return false;
	if (payload.seen[F_EXP] && now >= payload.exp + JWT_LEEWAY_SECONDS)
		return false;
	if (payload.seen[F_NBF] && now < payload.nbf - JWT_LEEWAY_SECONDS)
		return false;
	if (payload.audience && !payload.aud_match)
		return false;
	if (!payload.org_ok)
		return false;
	memcpy(org, payload.org, JWT_ORG_BYTES);
	if (sub)
		strcpy(sub, payload.sub);
	return true;
}
