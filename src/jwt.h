/*
 * jwt.h: HS256 JSON Web Token verification, usable in the backend and in
 * frontend programs (the fuzzer).
 */
#ifndef SDR_JWT_H
#define SDR_JWT_H

#define JWT_LEEWAY_SECONDS 30
#define JWT_MAX_BYTES 8192
#define JWT_SECRET_MIN_BYTES 32
#define JWT_ORG_BYTES 16
#define JWT_SUB_MAX 64

/*
 * True if token is a valid HS256 JWT under secret at time now (Unix seconds),
 * with audience in its aud claim when audience is set; org receives its
 * org_id claim (16 bytes) and sub, if not NULL, its sub claim (JWT_SUB_MAX +
 * 1 bytes: "" if none, "?" if it is not a short plain string).
 */
extern bool jwt_verify(const char *token, size_t len, const char *secret, size_t secret_len,
					   const char *audience, double now, unsigned char *org, char *sub);

#endif
