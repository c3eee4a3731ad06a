/*
 * jwk.c: an identity provider's public keys (JWKS) and JWS signatures.
 *
 * Plain C over PostgreSQL's JSON lexer (common/jsonapi.h, which never
 * throws), OpenSSL's libcrypto and libsodium: the same code runs in the
 * backend and, built with -DFRONTEND, in the fuzzer.
 *
 * A JWKS is accepted only whole: every key a public signature key of a kind
 * this file verifies (RSA of 2048 to 8192 bits, EC on P-256 or P-384, OKP on
 * Ed25519), its "alg" (if any) one this file verifies and fitting its type, a
 * kid on every key when there are several, no kid twice, no member of a
 * private key. Keys marked "use": "enc" (Keycloak publishes one) are checked
 * for private members and then left out: they never verify a token.
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "jsonlex.h"
#include "jwk.h"

static const char *const alg_names[JWS_COUNT] = {
	[JWS_RS256] = "RS256", [JWS_RS384] = "RS384", [JWS_RS512] = "RS512", [JWS_PS256] = "PS256",
	[JWS_ES256] = "ES256", [JWS_ES384] = "ES384", [JWS_EDDSA] = "EdDSA"
};

JwsAlg
jws_alg_named(const char *name)
{
	for (int a = JWS_NONE + 1; a < JWS_COUNT; a++)
		if (strcmp(name, alg_names[a]) == 0)
			return (JwsAlg) a;
	return JWS_NONE;
}

/* A key's members that this file reads; each at most once. */
typedef enum
{
	JM_OTHER, JM_KTY, JM_CRV, JM_ALG, JM_KID, JM_USE, JM_N, JM_E, JM_X, JM_Y, JM_COUNT
} Member;

static const char *const member_names[JM_COUNT] = {
	[JM_KTY] = "kty", [JM_CRV] = "crv", [JM_ALG] = "alg", [JM_KID] = "kid", [JM_USE] = "use",
	[JM_N] = "n", [JM_E] = "e", [JM_X] = "x", [JM_Y] = "y"
};

/* Members of a private or symmetric key: never stored. */
static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

typedef struct Parse
{
	JsonLexContext *lex;
	Jwks	   *out;
	const char *error;			/* the first refusal */
	int			error_index;
	bool		root_object;
	bool		keys_seen;		/* the root's "keys" member */
	bool		in_keys_field;	/* reading the root's "keys" value */
	bool		in_key;			/* inside one of its objects */
	int			index;			/* 1-based index of the key read */
	Member		current;
	char	   *value[JM_COUNT];
	bool		seen[JM_COUNT];
	bool		is_private;
} Parse;

static void
refuse(Parse *p, int index, const char *why)
{
	if (p->error == NULL)
	{
		p->error = why;
		p->error_index = index;
	}
}

/* base64url without padding into buf (at most cap bytes); false if invalid. */
static bool
b64url_into(const char *s, unsigned char *buf, size_t cap, size_t *len)
{
	const char *end;
	size_t		slen = s ? strlen(s) : 0;

	return slen > 0 &&
		sodium_base642bin(buf, cap, s, slen, NULL, len, &end,
						  sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
		end == s + slen && *len > 0;
}

static EVP_PKEY *
pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY   *pkey = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

/* An RSA public key from n and e; NULL (with *why) if refused. */
static EVP_PKEY *
rsa_key(const char *n64, const char *e64, const char **why)
{
	unsigned char n[JWK_RSA_MAX_BITS / 8 + 1];
	unsigned char e[8];
	size_t		nlen;
	size_t		elen;
	BIGNUM	   *bn = NULL;
	BIGNUM	   *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY   *pkey = NULL;

	if (!b64url_into(n64, n, sizeof(n), &nlen) || !b64url_into(e64, e, sizeof(e), &elen))
	{
		*why = "RSA key without valid base64url \"n\" and \"e\" (or over 8192 bits)";
		return NULL;
	}
	bn = BN_bin2bn(n, (int) nlen, NULL);
	be = BN_bin2bn(e, (int) elen, NULL);
	if (bn == NULL || be == NULL)
		*why = "RSA key could not be read";
	else if (BN_num_bits(bn) < JWK_RSA_MIN_BITS)
		*why = "RSA key under 2048 bits";
	else if (BN_num_bits(bn) > JWK_RSA_MAX_BITS)
		*why = "RSA key over 8192 bits";
	else if (!BN_is_odd(be) || BN_num_bits(be) < 2 || BN_num_bits(be) > 33)
		*why = "RSA key with an invalid public exponent";
	else if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
			 !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
			 !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
			 (pkey = pkey_from("RSA", bld)) == NULL)
		*why = "RSA key could not be read";
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return pkey;
}

/*
 * One coordinate into out (coord bytes, big-endian), right-aligned. RFC 7518
 * wants it full size, but some encoders (PyJWT before 2.8, among others) drop
 * its leading zero bytes, as for any other integer: one key in 128 on P-256.
 * The integer is the same, so a shorter one is padded back rather than refused.
 */
static bool
ec_coordinate(const char *s, unsigned char *out, size_t coord)
{
	unsigned char buf[48 + 1];
	size_t		len;

	if (!b64url_into(s, buf, coord + 1, &len) || len > coord)
		return false;
	memset(out, 0, coord - len);
	memcpy(out + coord - len, buf, len);
	return true;
}

/* An EC public key on P-256 or P-384 from x and y; NULL (with *why) if refused. */
static EVP_PKEY *
ec_key(JwkType type, const char *x64, const char *y64, const char **why)
{
	size_t		coord = type == JWK_P256 ? 32 : 48;
	unsigned char point[1 + 2 * 48];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY   *pkey = NULL;
	EVP_PKEY_CTX *check = NULL;

	point[0] = 0x04;			/* uncompressed: 04 || x || y */
	if (!ec_coordinate(x64, point + 1, coord) || !ec_coordinate(y64, point + 1 + coord, coord))
		*why = "EC key without valid \"x\" and \"y\" of at most its curve's size";
	else if (bld == NULL ||
			 !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
											  type == JWK_P256 ? "P-256" : "P-384", 0) ||
			 !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * coord) ||
			 (pkey = pkey_from("EC", bld)) == NULL ||
			 (check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
			 EVP_PKEY_public_check(check) != 1)
	{
		*why = "EC key whose point is not on its curve";
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(check);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

static const char *
key_type(Parse *p, JwkType *type)
{
	const char *kty = p->value[JM_KTY];
	const char *crv = p->value[JM_CRV];

	if (kty == NULL)
		return "key without \"kty\"";
	if (strcmp(kty, "RSA") == 0)
		*type = JWK_RSA;
	else if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0)
		*type = JWK_P256;
	else if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-384") == 0)
		*type = JWK_P384;
	else if (strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0)
		*type = JWK_ED25519;
	else
		return "unsupported key type (kty RSA, EC with crv P-256 or P-384, OKP with crv Ed25519)";
	return NULL;
}

/* The key just read, checked and added to p->out; or the reason it is refused. */
static const char *
key_done(Parse *p)
{
	Jwk			key = {0};
	const char *why = NULL;
	const char *alg = p->value[JM_ALG];
	const char *use = p->value[JM_USE];
	const char *kid = p->value[JM_KID];

	if (p->is_private)
		return "holds a private key member (d, p, q, dp, dq, qi, oth or k): store public keys only";
	if (use && strcmp(use, "enc") == 0)
		return NULL;			/* an encryption key: not for signatures, left out */
	if (use && strcmp(use, "sig") != 0)
		return "\"use\" other than \"sig\" or \"enc\"";
	if ((why = key_type(p, &key.type)) != NULL)
		return why;
	if (alg)
	{
		key.alg = strcmp(alg, "Ed25519") == 0 ? JWS_EDDSA : jws_alg_named(alg);
		if (key.alg == JWS_NONE)
			return "unsupported \"alg\" (RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA)";
	}
	if (kid)
	{
		if (strlen(kid) == 0 || strlen(kid) > JWK_KID_MAX)
			return "\"kid\" empty or over 128 bytes";
		key.has_kid = true;
		strcpy(key.kid, kid);
	}
	if (key.alg != JWS_NONE && !jwk_fits(&key, key.alg))
		return "\"alg\" does not fit the key's kty and crv";
	if (p->out->nkeys >= JWKS_MAX_KEYS)
		return "more than 32 keys";
	if (key.type == JWK_RSA)
		key.pkey = rsa_key(p->value[JM_N], p->value[JM_E], &why);
	else if (key.type == JWK_P256 || key.type == JWK_P384)
		key.pkey = ec_key(key.type, p->value[JM_X], p->value[JM_Y], &why);
	else
	{
		size_t		len;
		unsigned char x[33];

		if (!b64url_into(p->value[JM_X], x, sizeof(x), &len) || len != 32)
			why = "Ed25519 key without a valid 32-byte \"x\"";
		else
			memcpy(key.ed25519, x, 32);
	}
	if (why)
		return why;
	p->out->keys[p->out->nkeys++] = key;
	return NULL;
}

static void
key_reset(Parse *p)
{
	for (int m = 0; m < JM_COUNT; m++)
	{
		if (p->value[m])
			pfree(p->value[m]);
		p->value[m] = NULL;
		p->seen[m] = false;
	}
	p->is_private = false;
	p->current = JM_OTHER;
}

static CALLBACK
on_object_start(void *state)
{
	Parse	   *p = state;
	int			level = p->lex->lex_level;

	if (level == 0)
		p->root_object = true;
	else if (level == 1 && p->in_keys_field)
		refuse(p, 0, "\"keys\" is not an array");
	else if (level == 2 && p->in_keys_field)
	{
		p->index++;
		p->in_key = true;
		key_reset(p);
	}
	else if (level == 3 && p->in_key && p->current != JM_OTHER)
		refuse(p, p->index, "a key member is not a string");
	DONE;
}

static CALLBACK
on_object_end(void *state)
{
	Parse	   *p = state;

	if (p->lex->lex_level == 2 && p->in_key)
	{
		const char *why = key_done(p);

		if (why)
			refuse(p, p->index, why);
		key_reset(p);
		p->in_key = false;
	}
	DONE;
}

/* A value other than an object at level: refused where an object is needed. */
static bool
object_needed(Parse *p, int level)
{
	if (level == 0)
		refuse(p, 0, "not a JSON object");
	else if (level == 2 && p->in_keys_field)
		refuse(p, 0, "a member of \"keys\" is not an object");
	else
		return false;
	return true;
}

static CALLBACK
on_array_start(void *state)
{
	Parse	   *p = state;
	int			level = p->lex->lex_level;

	if (!object_needed(p, level) && level == 3 && p->in_key && p->current != JM_OTHER)
		refuse(p, p->index, "a key member is not a string");
	DONE;
}

static CALLBACK
on_field_start(void *state, char *fname, bool isnull)
{
	Parse	   *p = state;
	int			level = p->lex->lex_level;

	if (level == 1)
	{
		p->in_keys_field = strcmp(fname, "keys") == 0;
		if (p->in_keys_field && p->keys_seen)
			refuse(p, 0, "\"keys\" given twice");
		p->keys_seen |= p->in_keys_field;
	}
	else if (level == 3 && p->in_key)
	{
		p->current = JM_OTHER;
		for (int m = JM_OTHER + 1; m < JM_COUNT; m++)
			if (strcmp(fname, member_names[m]) == 0)
				p->current = (Member) m;
		for (size_t i = 0; i < lengthof(private_members); i++)
			if (strcmp(fname, private_members[i]) == 0)
				p->is_private = true;
		if (p->current != JM_OTHER && p->seen[p->current])
			refuse(p, p->index, "a key member given twice");
		p->seen[p->current] = true;
	}
	pfree(fname);
	DONE;
}

static CALLBACK
on_scalar(void *state, char *token, JsonTokenType type)
{
	Parse	   *p = state;
	int			level = p->lex->lex_level;
	bool		read = level == 3 && p->in_key && p->current != JM_OTHER;

	if (object_needed(p, level))
		read = false;
	else if (level == 1 && p->in_keys_field)
		refuse(p, 0, "\"keys\" is not an array");
	else if (read && type != JSON_TOKEN_STRING)
		refuse(p, p->index, "a key member is not a string");
	if (read && type == JSON_TOKEN_STRING && p->value[p->current] == NULL)
		p->value[p->current] = token;	/* kept: freed by key_reset */
	else
		pfree(token);
	DONE;
}

void
jwks_free(Jwks *jwks)
{
	for (int i = 0; i < jwks->nkeys; i++)
	{
		EVP_PKEY_free(jwks->keys[i].pkey);
		jwks->keys[i].pkey = NULL;
	}
	jwks->nkeys = 0;
}

const char *
jwks_parse(const char *json, size_t len, Jwks *out, int *key_index)
{
	JsonSemAction sem = {0};
	Parse		p = {0};
	bool		valid;

	out->nkeys = 0;
	p.out = out;
	sem.semstate = &p;
	sem.object_start = on_object_start;
	sem.object_end = on_object_end;
	sem.array_start = on_array_start;
	sem.object_field_start = on_field_start;
	sem.scalar = on_scalar;
	valid = json_parse_with(json, len, &sem, &p.lex);
	key_reset(&p);
	if (!valid)
		refuse(&p, 0, "not valid JSON");
	else if (!p.keys_seen)
		refuse(&p, 0, "no \"keys\" array");
	else if (out->nkeys == 0)
		refuse(&p, 0, "no signature key");
	for (int i = 0; p.error == NULL && i < out->nkeys; i++)
	{
		if (out->nkeys > 1 && !out->keys[i].has_kid)
			refuse(&p, 0, "a JWKS of several keys needs a \"kid\" on each");
		for (int j = 0; j < i; j++)
			if (out->keys[i].has_kid && out->keys[j].has_kid &&
				strcmp(out->keys[i].kid, out->keys[j].kid) == 0)
				refuse(&p, 0, "two keys with the same \"kid\"");
	}
	ERR_clear_error();
	if (p.error)
		jwks_free(out);
	*key_index = p.error_index;
	return p.error;
}

const Jwk *
jwks_find(const Jwks *jwks, const char *kid)
{
	if (kid == NULL)
		return jwks->nkeys == 1 ? &jwks->keys[0] : NULL;
	for (int i = 0; i < jwks->nkeys; i++)
		if (jwks->keys[i].has_kid && strcmp(jwks->keys[i].kid, kid) == 0)
			return &jwks->keys[i];
	return NULL;
}

bool
jwk_fits(const Jwk *key, JwsAlg alg)
{
	if (key->alg != JWS_NONE && key->alg != alg)
		return false;
	switch (alg)
	{
		case JWS_RS256:
		case JWS_RS384:
		case JWS_RS512:
		case JWS_PS256:
			return key->type == JWK_RSA;
		case JWS_ES256:
			return key->type == JWK_P256;
		case JWS_ES384:
			return key->type == JWK_P384;
		case JWS_EDDSA:
			return key->type == JWK_ED25519;
		default:
			return false;
	}
}

/* JOSE's R||S (2 * coord bytes) as the DER ECDSA-Sig-Value libcrypto takes; -1 if not. */
static int
ecdsa_der(const unsigned char *sig, size_t sig_len, size_t coord, unsigned char **der)
{
	ECDSA_SIG  *es;
	BIGNUM	   *r;
	BIGNUM	   *s;
	int			len = -1;

	if (sig_len != 2 * coord)
		return -1;				/* a DER signature, or truncated */
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, (int) coord, NULL);
	s = BN_bin2bn(sig + coord, (int) coord, NULL);
	if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1)
	{
		r = s = NULL;			/* owned by es now */
		len = i2d_ECDSA_SIG(es, der);
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return len;
}

static bool
evp_verify(const Jwk *key, JwsAlg alg, const unsigned char *msg, size_t msg_len,
		   const unsigned char *sig, size_t sig_len)
{
	const EVP_MD *md = (alg == JWS_RS384 || alg == JWS_ES384) ? EVP_sha384()
		: alg == JWS_RS512 ? EVP_sha512() : EVP_sha256();
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	bool		ok = false;

	if (alg == JWS_ES256 || alg == JWS_ES384)
	{
		int			len = ecdsa_der(sig, sig_len, alg == JWS_ES256 ? 32 : 48, &der);

		if (len <= 0)
			goto done;
		sig = der;
		sig_len = (size_t) len;
	}
	else if (sig_len != (size_t) EVP_PKEY_get_size(key->pkey))
		goto done;
	if (ctx == NULL || EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key->pkey) != 1)
		goto done;
	if (alg == JWS_PS256 &&
		(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
		 EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1))
		goto done;
	ok = EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
done:
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

bool
jws_verify(const Jwk *key, JwsAlg alg, const unsigned char *msg, size_t msg_len,
		   const unsigned char *sig, size_t sig_len)
{
	if (!jwk_fits(key, alg))
		return false;
	if (alg == JWS_EDDSA)
		return sig_len == crypto_sign_BYTES &&
			crypto_sign_verify_detached(sig, msg, msg_len, key->ed25519) == 0;
	return key->pkey != NULL && evp_verify(key, alg, msg, msg_len, sig, sig_len);
}
