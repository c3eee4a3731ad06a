/*
 * jwt.h: JSON Web Tokens: HS256 verification, and the parts and claims of a
 * token signed with an identity provider's key (checked by issuers.c with
 * jwk.c). Usable in the backend and in frontend programs (the fuzzer).
 */
#ifndef SDR_JWT_H
#define SDR_JWT_H

#define JWT_LEEWAY_SECONDS 30
#define JWT_MAX_BYTES 8192
#define JWT_SECRET_MIN_BYTES 32
#define JWT_ORG_BYTES 16
#define JWT_SUB_MAX 64
#define JWT_ALG_MAX 15
#define JWT_KID_MAX 128
#define JWT_ISS_MAX 512

/*
 * True if token is a valid HS256 JWT under secret at time now (Unix seconds),
 * with audience in its aud claim when audience is set; org receives its
 * org_id claim (16 bytes) and sub, if not NULL, its sub claim (JWT_SUB_MAX +
 * 1 bytes: "" if none, "?" if it is not a short plain string).
 */
extern bool jwt_verify(const char *token, size_t len, const char *secret, size_t secret_len,
					   const char *audience, double now, unsigned char *org, char *sub);

/* What jwt_split reads of a token before its signature is checked. */
typedef struct JwtParts
{
	char		alg[JWT_ALG_MAX + 1];	/* the header's alg ("" if not a short string) */
	bool		has_kid;		/* the header has a kid */
	char		kid[JWT_KID_MAX + 1];	/* "" if it is not a string of at most 128 bytes */
	bool		crit;			/* the header has crit */
	bool		key_in_header;	/* the header has jku, x5u, jwk or x5c */
	char		iss[JWT_ISS_MAX + 1];	/* the payload's iss ("" if none or not a short string) */
	size_t		signed_len;		/* the signed input: the token's first signed_len bytes */
	const char *payload;		/* the payload segment (base64url) in the token */
	size_t		payload_len;
	unsigned char *sig;			/* the decoded signature (palloc'd) */
	size_t		sig_len;
} JwtParts;

/*
 * Reads a token's parts: false unless it has three base64url segments, at
 * most JWT_MAX_BYTES in all, whose header and payload are JSON objects
 * without duplicates of the fields read. Frees with jwt_parts_free.
 */
extern bool jwt_split(const char *token, size_t len, JwtParts *parts);
extern void jwt_parts_free(JwtParts *parts);

/*
 * Checks a payload segment's claims at time now: exp and nbf within the
 * leeway, audience (if set) in aud, a UUID at org_claim (a claim name, or a
 * dotted path tried after the whole name) into org; sub as jwt_verify's; exp,
 * if not NULL, receives the time after which the token is refused (-1: none).
 */
extern bool jwt_claims(const char *payload, size_t payload_len, const char *audience,
					   const char *org_claim, double now, unsigned char *org, char *sub,
					   double *exp);

#endif
