/*
 * jwks_fuzz.c: libFuzzer harness for the JWKS parser and JWS verification
 * (src/jwk.c) and the parts and claims of an identity provider's token
 * (jwt_split, jwt_claims in src/jwt.c).
 *
 * Input byte 0 picks a mode. Mode 0: the rest is a JWKS document. Mode 1: the
 * rest is "jwks \n token": the token is checked against the keys as the
 * backend does (issuers.c). Mode 2: the rest is a signature, checked against
 * each key of a fixed JWKS with each algorithm over a fixed message.
 * Properties checked: no crash or sanitizer report; a JWKS accepted holds at
 * most JWKS_MAX_KEYS keys, each RSA or EC one with its libcrypto key and a
 * kid on each when there are several; a token accepted is accepted again and
 * refused once its signature changes; random bytes never verify (mode 2).
 * The committed corpus was made with python3-jwt from throwaway keys (only
 * their public halves and their tokens are kept).
 */
#include "postgres_fe.h"

#include <sodium.h>

#include "../../src/jwk.h"
#include "../../src/jwt.h"

/* Public keys only: RSA 2048, P-256, P-384, Ed25519. */
static const char fixed_jwks[] = "{\"keys\": [{\"kty\": \"RSA\", \"n\": \"pUuYGRiWxAO1ev08z9NhN7dBnJh0_Wx_ef6nR6rFVoQnrYpg-GNtffgEjdaxd5I6U7bMmydA_npEOYpQuGLjusHpRL5ddRg9gxsl8DUhIsohe8v6DOWFEbk-cNRhjRn-qdaIuL5MXp9vX0WbFNZlOb7TuuMyGBYbbW_E31MjWFoxf1BNPkhb7_DHcmf6bWkuD-zCpuaH9syQBswnByCedAUwnjSKy6noPfbFKN5P9lNweHCDBQ9NGglXPGOsVqT8bWgjCRnRJpR828RaPjYIIBYRGVf-iKu8WaJgBhfjWsD5EHFwfhaebxS66KjSk8zJq718QgSxC774QJJR91xv-w\", \"e\": \"AQAB\", \"kid\": \"rsa\"}, {\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"cl6xon9choY-04AQ81ORnTZPyW993693C4eqD4d_YA8\", \"y\": \"KunrfZ5ebaDEA9fddaCo1RYBzDMkhG-srEQm46hFXiQ\", \"kid\": \"p256\"}, {\"kty\": \"EC\", \"crv\": \"P-384\", \"x\": \"yYRItDLcfY6WI64IuFzWii6OzoXrdqGwqITx2PKQwu1TVSTXITun9zm_3P6D0xot\", \"y\": \"AXnGAP9xokLgjBbfJmcZKc20pZzZai6lF2S98PRnU09EvnmRt5i0bnu8eyqN5UWy\", \"kid\": \"p384\"}, {\"x\": \"2nNzdJEjPWjPtqfhIlcIOw3A4XtFZ8EsmMcCD04xXm4\", \"kty\": \"OKP\", \"crv\": \"Ed25519\", \"kid\": \"ed\"}]}";

static void
check_jwks(const Jwks *jwks)
{
	if (jwks->nkeys < 1 || jwks->nkeys > JWKS_MAX_KEYS)
		abort();
	for (int i = 0; i < jwks->nkeys; i++)
	{
		const Jwk  *k = &jwks->keys[i];

		if ((k->type != JWK_ED25519) != (k->pkey != NULL) || (jwks->nkeys > 1 && !k->has_kid))
			abort();
	}
}

static bool
token_valid(const Jwks *jwks, const char *token, size_t len, unsigned char *org)
{
	JwtParts	parts;
	JwsAlg		alg;
	const Jwk  *key;
	bool		ok = false;

	if (!jwt_split(token, len, &parts))
		return false;
	alg = jws_alg_named(parts.alg);
	key = jwks_find(jwks, parts.has_kid ? parts.kid : NULL);
	if (alg != JWS_NONE && key && !parts.crit && !parts.key_in_header && jwk_fits(key, alg) &&
		jws_verify(key, alg, (const unsigned char *) token, parts.signed_len, parts.sig, parts.sig_len))
		ok = jwt_claims(parts.payload, parts.payload_len, NULL, "a.b", 1.0e9, org, NULL, NULL) ||
			jwt_claims(parts.payload, parts.payload_len, "aud", "org_id", 1.0e9, org, NULL, NULL);
	jwt_parts_free(&parts);
	return ok;
}

static void
check_token(const char *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	size_t		jlen = nl ? (size_t) (nl - data) : size;
	Jwks		jwks;
	int			index;
	unsigned char org[16];
	unsigned char again[16];
	size_t		tlen = nl ? size - jlen - 1 : 0;
	char	   *token = malloc(tlen + 1);

	memcpy(token, nl ? nl + 1 : data, tlen);
	token[tlen] = '\0';
	if (jwks_parse(data, jlen, &jwks, &index) == NULL)
	{
		check_jwks(&jwks);
		if (token_valid(&jwks, token, tlen, org))
		{
			if (!token_valid(&jwks, token, tlen, again) || memcmp(org, again, sizeof(org)) != 0)
				abort();
			token[tlen - 1] = token[tlen - 1] == 'A' ? 'Q' : 'A';
			if (token_valid(&jwks, token, tlen, again))
				abort();
		}
		jwks_free(&jwks);
	}
	free(token);
}

static void
check_signature(const unsigned char *sig, size_t len)
{
	static const char msg[] = "eyJhbGciOiJFUzI1NiJ9.e30";
	Jwks		jwks;
	int			index;

	if (jwks_parse(fixed_jwks, strlen(fixed_jwks), &jwks, &index) != NULL)
		abort();
	for (int i = 0; i < jwks.nkeys; i++)
		for (int a = JWS_NONE + 1; a < JWS_COUNT; a++)
			if (jws_verify(&jwks.keys[i], (JwsAlg) a, (const unsigned char *) msg, strlen(msg), sig, len))
				abort();		/* a forgery from random bytes */
	jwks_free(&jwks);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	if (sodium_init() < 0)
		abort();
	if (data[0] % 3 == 0)
	{
		Jwks		jwks;
		int			index;

		if (jwks_parse((const char *) data + 1, size - 1, &jwks, &index) == NULL)
		{
			check_jwks(&jwks);
			jwks_free(&jwks);
		}
	}
	else if (data[0] % 3 == 1)
		check_token((const char *) data + 1, size - 1);
	else
		check_signature(data + 1, size - 1);
	return 0;
}
