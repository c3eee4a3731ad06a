/*
 * auth.h: authenticating a caller and finding the org a call acts for.
 */
#ifndef SDR_AUTH_H
#define SDR_AUTH_H

#include "sdr_creds.h"

#include "monitor.h"
#include "org_context.h"

/* An API key or a JWT: sets caller's org context and *org; PT401 if invalid. */
extern void authenticate_credential(const char *credential, pg_uuid_t *org, Oid caller);

/* X-API-Key and Authorization header values (either may be NULL): as above. */
extern void authenticate_headers(const char *x_api_key, const char *authorization,
								 pg_uuid_t *org, Oid caller);

/* The org caller acts for, from its context or PostgREST's request.headers; PT401 if none. */
extern void require_org(pg_uuid_t *org, Oid caller);

/* Starts an API call (owner's identity, the caller's org: PT401 if none); ends one that succeeded. */
extern void api_enter(FunctionCallInfo fcinfo, ApiAction action, OwnerContext *oc, pg_uuid_t *org);
extern void api_leave(const OwnerContext *oc);

#endif
