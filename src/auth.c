/*
 * auth.c: who the caller is. Takes an API key (api_keys.c), a JWT signed by
 * a configured issuer (issuers.c) or an HS256 JWT (jwt.c), from an argument, from header values or from PostgREST's
 * request.headers, and sets the caller's org context. Every failure is the
 * same PT401 error; none says why, and none echoes what was presented.
 */
#include "auth.h"

#include <time.h>

#include "api_keys.h"
#include "issuers.h"
#include "json.h"
#include "jwt.h"
#include "monitor.h"
#include "org_context.h"
#include "redact.h"
#include "results.h"
#include "settings.h"
#include "utils/builtins.h"
#include "utils/guc.h"

/* A failed authentication: reported (monitor.c) with what is known, then PT401. */
static void pg_attribute_noreturn()
unauthorized(const char *principal, const char *key_prefix, const char *reason)
{
	monitor_auth_failed(principal, key_prefix, reason);
	SDR_ERROR("401", MSG_UNAUTHORIZED);
}

/* An API key; principal receives "key:<its id>". */
static void
api_key_authenticate(const char *key, pg_uuid_t *org, char *principal)
{
	static const char *const reasons[] = {
		[KEY_UNKNOWN] = "unknown_key", [KEY_REVOKED] = "revoked", [KEY_EXPIRED] = "expired"
	};
	pg_uuid_t	id;
	KeyCheck	check = api_key_verify(key, org, &id);

	if (check != KEY_VALID)
	{
		char		prefix[KEY_PREFIX_MAX];
		char		who[PRINCIPAL_MAX];

		/* "sk_" left out of the log line: a key-shaped string there would be withheld */
		api_key_prefix(key, prefix, sizeof(prefix));
		snprintf(who, sizeof(who), "key-prefix:%s", strncmp(prefix, "sk_", 3) == 0 ? prefix + 3 : prefix);
		unauthorized(who, prefix, reasons[check]);
	}
	snprintf(principal, PRINCIPAL_MAX, "key:%s",
			 DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&id))));
}

/* An HS256 JWT under sdr_creds.jwt_secret; sub receives its sub claim. */
static void
hs256_authenticate(const char *token, pg_uuid_t *org, char *sub)
{
	const char *secret = sdr_jwt_secret;
	size_t		secret_len = secret ? strlen(secret) : 0;

	if (secret_len < JWT_SECRET_MIN_BYTES)
		ereport(DEBUG1, (errmsg("sdr_creds: JWT refused: sdr_creds.jwt_secret is unset or shorter than %d bytes",
								JWT_SECRET_MIN_BYTES)));
	if (!jwt_verify(token, strlen(token), secret, secret_len, sdr_jwt_audience,
					(double) time(NULL), org->data, sub))
		unauthorized("jwt:-", "jwt", "invalid_jwt");
}

/*
 * A JWT: signed by a configured issuer's key (issuers.c), or HS256 under
 * sdr_creds.jwt_secret; principal receives "jwt:<its sub>" ("jwt:-" without one).
 */
static void
jwt_authenticate(const char *token, pg_uuid_t *org, char *principal)
{
	char		sub[JWT_SUB_MAX + 1];
	IssuerTokenCheck check = issuer_token_verify(token, strlen(token), (double) time(NULL),
												 org, sub);

	if (check == ISSUER_TOKEN_HS256)
		hs256_authenticate(token, org, sub);
	else if (check != ISSUER_TOKEN_VALID)
		unauthorized("jwt:-", "jwt", issuer_token_reasons[check]);
	/*
	 * The verified token's sub, at most 64 characters of [A-Za-z0-9._@:+-]
	 * (jwt.c), names the caller in audit lines and the usage statistics; one
	 * shaped like an API key or a JWT is written as "?", since both may be
	 * read by others than its holder.
	 */
	snprintf(principal, PRINCIPAL_MAX, "jwt:%s",
			 sub[0] == '\0' ? "-" : redact_has_secret(sub) ? "?" : sub);
}

/* Sets the caller's context to the authenticated org, and reports it. */
static void
authenticated(const pg_uuid_t *org, Oid caller, const char *principal)
{
	org_context_set(org, caller, principal);
	monitor_authenticated(org, principal);
}

/* An API key (sk_live_/sk_test_) or a JWT; the context is the caller's. */
void
authenticate_credential(const char *credential, pg_uuid_t *org, Oid caller)
{
	char		principal[PRINCIPAL_MAX];

	redact_activity();
	if (strncmp(credential, "sk_", 3) == 0)
		api_key_authenticate(credential, org, principal);
	else
		jwt_authenticate(credential, org, principal);
	authenticated(org, caller, principal);
}

/* X-API-Key wins when both are given; Authorization must be "Bearer <jwt>". */
void
authenticate_headers(const char *x_api_key, const char *authorization, pg_uuid_t *org,
					 Oid caller)
{
	char		principal[PRINCIPAL_MAX];

	redact_activity();
	if (x_api_key != NULL)
		api_key_authenticate(x_api_key, org, principal);
	else if (authorization != NULL && pg_strncasecmp(authorization, "Bearer ", 7) == 0)
	{
		const char *t = authorization + 7;

		while (*t == ' ')
			t++;
		jwt_authenticate(t, org, principal);
	}
	else
		unauthorized("-", "unknown", "no_credentials");
	authenticated(org, caller, principal);
}

/* A header from PostgREST's request.headers object, or NULL. */
static char *
header_value(Jsonb *headers, const char *name)
{
	JsonbValue	v;

	if (!getKeyJsonValueFromContainer(&headers->root, name, strlen(name), &v) || v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* Authenticates from PostgREST's request.headers setting, if there is one. */
static bool
authenticate_from_request(pg_uuid_t *org, Oid caller)
{
	const char *raw = GetConfigOption("request.headers", true, false);
	Jsonb	   *headers;

	if (raw == NULL || raw[0] == '\0')
		return false;
	headers = try_parse_jsonb(raw);
	if (headers == NULL || !JB_ROOT_IS_OBJECT(headers))
		unauthorized("-", "unknown", "no_credentials");
	authenticate_headers(header_value(headers, "x-api-key"),
						 header_value(headers, "authorization"), org, caller);
	return true;
}

/* The org this call's caller acts for; PT401 if it has none. */
void
require_org(pg_uuid_t *org, Oid caller)
{
	if (org_context_get(org, caller) || authenticate_from_request(org, caller))
		return;
	unauthorized("-", "unknown", "no_credentials");
}

typedef enum
{
	FROM_CREDENTIAL, FROM_HEADERS, FROM_REQUEST
} AuthSource;

/* The authenticate* SQL functions: the org id, with the caller's context set. */
static Datum
authenticate_call(FunctionCallInfo fcinfo, AuthSource source)
{
	pg_uuid_t  *org = palloc(sizeof(pg_uuid_t));
	OwnerContext oc;

	owner_enter(fcinfo, &oc);
	if (source == FROM_CREDENTIAL)
	{
		char	   *credential = text_arg(fcinfo, 0);

		if (credential == NULL)
			unauthorized("-", "unknown", "no_credentials");
		authenticate_credential(credential, org, oc.user);
	}
	else if (source == FROM_HEADERS)
	{
		if (PG_NARGS() == 3 && !PG_ARGISNULL(2))
			monitor_set_client(text_arg(fcinfo, 2));
		authenticate_headers(text_arg(fcinfo, 0), text_arg(fcinfo, 1), org, oc.user);
	}
	else if (!authenticate_from_request(org, oc.user))
		unauthorized("-", "unknown", "no_credentials");
	owner_leave(&oc);
	PG_RETURN_UUID_P(org);
}

PG_FUNCTION_INFO_V1(sdr_creds_authenticate);
Datum
sdr_creds_authenticate(PG_FUNCTION_ARGS)
{
	return authenticate_call(fcinfo, FROM_CREDENTIAL);
}

PG_FUNCTION_INFO_V1(sdr_creds_authenticate_headers);
Datum
sdr_creds_authenticate_headers(PG_FUNCTION_ARGS)
{
	return authenticate_call(fcinfo, FROM_HEADERS);
}

PG_FUNCTION_INFO_V1(sdr_creds_authenticate_request);
Datum
sdr_creds_authenticate_request(PG_FUNCTION_ARGS)
{
	return authenticate_call(fcinfo, FROM_REQUEST);
}

/*
 * Starts an API call: reports it (monitor.c), switches to the owner and
 * finds the caller's org (PT401 if none).
 */
void
api_enter(FunctionCallInfo fcinfo, ApiAction action, OwnerContext *oc, pg_uuid_t *org)
{
	monitor_call_begin(action);
	owner_enter(fcinfo, oc);
	require_org(org, oc->user);
	monitor_call_org(org);
}

/* Ends an API call that succeeded. */
void
api_leave(const OwnerContext *oc)
{
	owner_leave(oc);
	monitor_call_end();
}
