/*
 * auth.h: authenticating a caller and finding the org a call acts for.
 */
#ifndef SDR_AUTH_H
#define SDR_AUTH_H

#include "sdr_creds.h"

/* An API key or a JWT: sets caller's org context and *org; PT401 if invalid. */
extern void authenticate_credential(const char *credential, pg_uuid_t *org, Oid caller);

/* X-API-Key and Authorization header values (either may be NULL): as above. */
extern void authenticate_headers(const char *x_api_key, const char *authorization,
								 pg_uuid_t *org, Oid caller);

/* The org caller acts for, from its context or PostgREST's request.headers; PT401 if none. */
extern void require_org(pg_uuid_t *org, Oid caller);

#endif
