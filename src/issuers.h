/*
 * issuers.h: identity providers' public keys (sdr_creds.issuers) and the
 * tokens they sign (issuers.c).
 */
#ifndef SDR_ISSUERS_H
#define SDR_ISSUERS_H

#include "sdr_creds.h"
#include "jwt.h"

/* What checking a token against the issuers found; each has its audit reason. */
typedef enum
{
	ISSUER_TOKEN_VALID,
	ISSUER_TOKEN_HS256,			/* an HS256 token: sdr_creds.jwt_secret's (jwt_verify) */
	ISSUER_TOKEN_INVALID,		/* malformed, alg none or unknown, crit, a key in the header */
	ISSUER_TOKEN_UNKNOWN_ISSUER,
	ISSUER_TOKEN_UNKNOWN_KID,
	ISSUER_TOKEN_ALG_MISMATCH,	/* alg does not fit the key's kty, crv or alg */
	ISSUER_TOKEN_BAD_SIGNATURE,
	ISSUER_TOKEN_BAD_CLAIMS,	/* exp, nbf, aud or the org claim */
	ISSUER_TOKEN_COUNT
} IssuerTokenCheck;

extern const char *const issuer_token_reasons[ISSUER_TOKEN_COUNT];

/*
 * Checks a token signed with an issuer's key: org receives its org and sub
 * its sub claim (JWT_SUB_MAX + 1 bytes) when ISSUER_TOKEN_VALID. Verified
 * tokens are cached per backend until their exp or any change of the issuers.
 */
extern IssuerTokenCheck issuer_token_verify(const char *token, size_t len, double now,
											pg_uuid_t *org, char *sub);

#endif
