/*
 * jwk.h: an identity provider's public keys (a JWKS, RFC 7517) and checking
 * a JWS signature with one of them (RFC 7518): RS256/384/512 and PS256
 * (OpenSSL libcrypto), ES256/ES384 (libcrypto, JOSE's R||S form only) and
 * EdDSA over Ed25519 (libsodium). Usable in the backend and in frontend
 * programs (the fuzzer): it never raises an error, it returns one.
 */
#ifndef SDR_JWK_H
#define SDR_JWK_H

#define JWKS_MAX_KEYS 32
#define JWK_KID_MAX 128
#define JWK_RSA_MIN_BITS 2048
#define JWK_RSA_MAX_BITS 8192

/* The asymmetric algorithms a token's header may name. */
typedef enum
{
	JWS_NONE, JWS_RS256, JWS_RS384, JWS_RS512, JWS_PS256, JWS_ES256, JWS_ES384, JWS_EDDSA,
	JWS_COUNT
} JwsAlg;

typedef enum
{
	JWK_RSA, JWK_P256, JWK_P384, JWK_ED25519
} JwkType;

typedef struct Jwk
{
	JwkType		type;
	JwsAlg		alg;			/* JWS_NONE if the key names none */
	bool		has_kid;
	char		kid[JWK_KID_MAX + 1];
	void	   *pkey;			/* EVP_PKEY (RSA, EC), owned by the Jwk */
	unsigned char ed25519[32];
} Jwk;

typedef struct Jwks
{
	int			nkeys;			/* signature keys ("use": "enc" keys are left out) */
	Jwk			keys[JWKS_MAX_KEYS];
} Jwks;

/*
 * Parses a JWKS document ({"keys": [...]}) into *out (palloc'd keys; free the
 * keys with jwks_free). NULL on success, else why it is refused, in words
 * that hold no key material; *key_index then receives the 1-based index of
 * the key at fault (0: the document as a whole).
 */
extern const char *jwks_parse(const char *json, size_t len, Jwks *out, int *key_index);
extern void jwks_free(Jwks *jwks);

/* The algorithm named by a header's alg value, or JWS_NONE. */
extern JwsAlg jws_alg_named(const char *name);

/* The key of kid (or the only key when kid is NULL and there is one), or NULL. */
extern const Jwk *jwks_find(const Jwks *jwks, const char *kid);

/* Whether alg may be used with key (its type, and its own alg if it has one). */
extern bool jwk_fits(const Jwk *key, JwsAlg alg);

/* Whether sig is a valid alg signature of msg under key (jwk_fits first). */
extern bool jws_verify(const Jwk *key, JwsAlg alg, const unsigned char *msg, size_t msg_len,
					   const unsigned char *sig, size_t sig_len);

#endif
