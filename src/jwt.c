/*
 * jwt.c: JSON Web Tokens: their parts and claims, and HS256 verification.
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
 *
 * Tokens signed with an identity provider's key (issuers.c, jwk.c) use the
 * same parts: jwt_split reads the header (alg, kid, and whether crit, jku,
 * x5u, jwk or x5c is there), the decoded signature and the payload's iss;
 * jwt_claims checks the payload against the issuer's audience and org claim,
 * a claim name or a dotted path into nested objects (the whole name is tried
 * first, so a name holding dots, such as https://example.com/org_id, works).
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <sodium.h>

#include "jsonlex.h"
#include "jwt.h"
#include "hex.h"

/* The fields read from a header or payload; each seen at most once. */
typedef enum
{
	F_OTHER, F_ALG, F_CRIT, F_EXP, F_NBF, F_AUD, F_ORG, F_SUB, F_KID, F_ISS,
	F_JKU, F_X5U, F_JWK, F_X5C, F_COUNT
} Field;

/* Fields only noted as present, whatever their value. */
#define PRESENCE_ONLY(f) ((f) == F_CRIT || (f) == F_JKU || (f) == F_X5U || (f) == F_JWK || (f) == F_X5C)

#define PATH_MAX_DEPTH 4		/* levels of a dotted org claim path */

typedef struct Claims
{
	JsonLexContext *lex;
	const char *audience;
	const char *org_claim;		/* the org's claim: a name or a dotted path */
	bool		root_object;
	bool		bad;			/* a claim of the wrong type or a duplicate */
	Field		current;
	bool		seen[F_COUNT];
	bool		alg_hs256;
	double		exp;
	double		nbf;
	bool		aud_match;
	bool		org_ok;
	bool		org_by_path;	/* the org claim was found by its dotted path */
	char		sub[JWT_SUB_MAX + 1];	/* "" if none, "?" if not a short plain string */
	unsigned char org[JWT_ORG_BYTES];
	char		alg[JWT_ALG_MAX + 1];	/* "" if not a short string */
	char		kid[JWT_KID_MAX + 1];	/* "" if none or not a short string */
	char		iss[JWT_ISS_MAX + 1];	/* "" if none or not a short string */
	/* the field names along the path to the current value, and which levels are objects */
	char	   *path[PATH_MAX_DEPTH + 1];
	bool		in_object[PATH_MAX_DEPTH + 2];
} Claims;

static const char *const field_names[F_COUNT] = {
	[F_ALG] = "alg", [F_CRIT] = "crit", [F_EXP] = "exp", [F_NBF] = "nbf",
	[F_AUD] = "aud", [F_ORG] = "org_id", [F_SUB] = "sub", [F_KID] = "kid", [F_ISS] = "iss",
	[F_JKU] = "jku", [F_X5U] = "x5u", [F_JWK] = "jwk", [F_X5C] = "x5c"
};

static CALLBACK
on_object_start(void *state)
{
	Claims	   *c = state;

	int			level = c->lex->lex_level;

	if (level == 0)
		c->root_object = true;
	else if (level == 1 && c->current != F_OTHER && !PRESENCE_ONLY(c->current))
		c->bad = true;			/* a claim we read is an object */
	if (level <= PATH_MAX_DEPTH)
		c->in_object[level + 1] = true;
	DONE;
}

static CALLBACK
on_array_start(void *state)
{
	Claims	   *c = state;

	int			level = c->lex->lex_level;

	if (level == 1 && c->current != F_OTHER && !PRESENCE_ONLY(c->current) && c->current != F_AUD)
		c->bad = true;
	if (level <= PATH_MAX_DEPTH)
		c->in_object[level + 1] = false;
	DONE;
}

static CALLBACK
on_field_start(void *state, char *fname, bool isnull)
{
	Claims	   *c = state;

	int			level = c->lex->lex_level;

	if (level == 1)
	{
		c->current = F_OTHER;
		for (int f = F_OTHER + 1; f < F_COUNT; f++)
			if (f != F_ORG && strcmp(fname, field_names[f]) == 0)
				c->current = (Field) f;
		if (strcmp(fname, c->org_claim) == 0)
			c->current = F_ORG;
		if (c->current != F_OTHER && c->seen[c->current])
			c->bad = true;		/* duplicate claim */
		c->seen[c->current] = true;
	}
	if (level >= 1 && level <= PATH_MAX_DEPTH)
	{
		for (int l = level; l <= PATH_MAX_DEPTH; l++)
			if (c->path[l])
			{
				pfree(c->path[l]);
				c->path[l] = NULL;
			}
		c->path[level] = fname;
	}
	else
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

/* A short string claim copied into out (max bytes and its NUL), else "". */
static void
read_short(char *out, size_t max, const char *token, JsonTokenType type)
{
	size_t		len = strlen(token);

	out[0] = '\0';
	if (type == JSON_TOKEN_STRING && len <= max)
		memcpy(out, token, len + 1);
}

/* Whether the value at level (>= 2) sits at the org claim's dotted path. */
static bool
at_org_path(Claims *c, int level)
{
	const char *want = c->org_claim;

	if (level > PATH_MAX_DEPTH)
		return false;
	for (int l = 1; l <= level; l++)
	{
		size_t		n;

		if (c->path[l] == NULL || (l > 1 && !c->in_object[l]))
			return false;
		n = strlen(c->path[l]);
		if (strncmp(want, c->path[l], n) != 0 || want[n] != (l == level ? '\0' : '.'))
			return false;
		want += n + 1;
	}
	return true;
}

static void
read_scalar(Claims *c, Field f, const char *token, JsonTokenType type)
{
	switch (f)
	{
		case F_ALG:
			c->alg_hs256 = (type == JSON_TOKEN_STRING && strcmp(token, "HS256") == 0);
			read_short(c->alg, JWT_ALG_MAX, token, type);
			break;
		case F_KID:
			read_short(c->kid, JWT_KID_MAX, token, type);
			break;
		case F_ISS:
			read_short(c->iss, JWT_ISS_MAX, token, type);
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
	else if (level >= 2 && at_org_path(c, level))
	{
		if (c->org_by_path)
			c->bad = true;		/* twice */
		c->org_by_path = true;
		if (!c->seen[F_ORG])
			read_scalar(c, F_ORG, token, type);
	}
	pfree(token);
	DONE;
}

/* Parses a decoded segment as a JSON object into c; false if it is not one. */
static bool
parse_claims(char *json, size_t len, Claims *c)
{
	JsonSemAction sem = {0};
	bool		ok;

	sem.semstate = c;
	sem.object_start = on_object_start;
	sem.array_start = on_array_start;
	sem.object_field_start = on_field_start;
	sem.scalar = on_scalar;
	if (c->org_claim == NULL)
		c->org_claim = "org_id";
	ok = json_parse_with(json, len, &sem, &c->lex);
	for (int l = 0; l <= PATH_MAX_DEPTH; l++)
		if (c->path[l])
			pfree(c->path[l]);
	return ok && c->root_object && !c->bad;
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

/* The token's three non-empty segments end at *dot1 and *dot2; false if it has not three. */
static bool
split3(const char *token, size_t len, const char **dot1, const char **dot2)
{
	const char *sig;

	*dot1 = memchr(token, '.', len);
	*dot2 = *dot1 ? memchr(*dot1 + 1, '.', len - (*dot1 + 1 - token)) : NULL;
	if (len > JWT_MAX_BYTES || *dot2 == NULL)
		return false;
	sig = *dot2 + 1;
	return memchr(sig, '.', len - (sig - token)) == NULL;
}

bool
jwt_claims(const char *payload, size_t payload_len, const char *audience, const char *org_claim,
		   double now, unsigned char *org, char *sub, double *exp)
{
	Claims		c = {0};

	c.audience = (audience && audience[0]) ? audience : NULL;
	c.org_claim = org_claim;
	if (!segment_claims(payload, payload_len, &c))
		return false;
	if (c.seen[F_EXP] && now >= c.exp + JWT_LEEWAY_SECONDS)
		return false;
	if (c.seen[F_NBF] && now < c.nbf - JWT_LEEWAY_SECONDS)
		return false;
	if (c.audience && !c.aud_match)
		return false;
	if (!c.org_ok)
		return false;
	memcpy(org, c.org, JWT_ORG_BYTES);
	if (sub)
		strcpy(sub, c.sub);
	if (exp)
		*exp = c.seen[F_EXP] ? c.exp + JWT_LEEWAY_SECONDS : -1;
	return true;
}

bool
jwt_split(const char *token, size_t len, JwtParts *parts)
{
	const char *dot1;
	const char *dot2;
	Claims		header = {0};
	Claims		payload = {0};

	memset(parts, 0, sizeof(*parts));
	if (!split3(token, len, &dot1, &dot2) || !segment_claims(token, dot1 - token, &header))
		return false;
	strcpy(parts->alg, header.alg);
	strcpy(parts->kid, header.kid);
	parts->has_kid = header.seen[F_KID];
	parts->crit = header.seen[F_CRIT];
	parts->key_in_header = header.seen[F_JKU] || header.seen[F_X5U] || header.seen[F_JWK] ||
		header.seen[F_X5C];
	parts->signed_len = dot2 - token;
	parts->payload = dot1 + 1;
	parts->payload_len = dot2 - dot1 - 1;
	if (!segment_claims(parts->payload, parts->payload_len, &payload))
		return false;
	strcpy(parts->iss, payload.iss);
	parts->sig = (unsigned char *) b64url(dot2 + 1, len - (dot2 + 1 - token), &parts->sig_len);
	return parts->sig != NULL;
}

void
jwt_parts_free(JwtParts *parts)
{
	if (parts->sig)
		pfree(parts->sig);
	parts->sig = NULL;
}

bool
jwt_verify(const char *token, size_t len, const char *secret, size_t secret_len,
		   const char *audience, double now, unsigned char *org, char *sub)
{
	const char *dot1;
	const char *dot2;
	const char *sig;
	Claims		header = {0};

	if (secret_len < JWT_SECRET_MIN_BYTES || !split3(token, len, &dot1, &dot2))
		return false;
	sig = dot2 + 1;

	/* The header must name HS256, the one algorithm configured. */
	if (!segment_claims(token, dot1 - token, &header) || !header.alg_hs256 || header.seen[F_CRIT])
		return false;
	if (!signature_valid(token, dot2 - token, sig, len - (sig - token), secret, secret_len))
		return false;
	return jwt_claims(dot1 + 1, dot2 - dot1 - 1, audience, "org_id", now, org, sub, NULL);
}
