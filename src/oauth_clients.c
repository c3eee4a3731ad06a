/*
 * oauth_clients.c: the SQL functions that manage an org's OAuth clients (one
 * per provider: token URL, client id, sealed client secret, auth method,
 * scopes), for the caller's org, as store() does for credentials. The secret
 * is sealed bound to the row and to every field the refresher sends with it,
 * and is never returned.
 */
#include "sdr_creds.h"

#include <sodium.h>

#include "auth.h"
#include "crypto.h"
#include "json.h"
#include "mb/pg_wchar.h"
#include "org_context.h"
#include "results.h"
#include "rows.h"
#include "settings.h"
#include "statements.h"
#include "utils/builtins.h"
#include "utils/json.h"

#define TOKEN_URL_MAX 2048
#define CLIENT_ID_MAX 1024
#define CLIENT_SECRET_MAX 4096
#define SCOPES_MAX 2048

/* One client's columns (S_CLIENT_LIST order); the secret is never read here. */
enum
{
	K_ID, K_ORG, K_PROVIDER, K_TOKEN_URL, K_CLIENT_ID, K_AUTH_METHOD, K_SCOPES, K_SECRET,
	K_KEY_VERSION, K_CREATED, K_UPDATED, K_COUNT
};

/* A text argument: 1..max bytes, valid in the database encoding, no control characters. */
static char *
client_field(text *t, const char *name, int max, bool required)
{
	const char *p;
	int			len;

	if (t == NULL)
	{
		if (required)
			SDR_ERROR("422", "%s must not be null", name);
		return NULL;
	}
	p = VARDATA_ANY(t);
	len = VARSIZE_ANY_EXHDR(t);
	if (len < 1 || len > max)
		SDR_ERROR("422", "%s must be 1 to %d bytes", name, max);
	if (!pg_verifymbstr(p, len, true))
		SDR_ERROR("422", "%s must be valid text in the database encoding", name);
	for (int i = 0; i < len; i++)
		if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
			SDR_ERROR("422", "%s must not contain control characters", name);
	return text_to_cstring(t);
}

/* https://host..., or http:// to a loopback host (127.0.0.1, localhost, [::1]) for tests. */
static bool
token_url_is_valid(const char *url)
{
	static const char *const loopback[] = {"127.0.0.1", "localhost", "[::1]"};
	const char *host;

	for (const char *c = url; *c; c++)
		if (*c <= ' ' || *c >= 0x7f)
			return false;
	if (strncmp(url, "https://", 8) == 0)
		return url[8] != '\0' && strchr("/?#:@", url[8]) == NULL;
	if (strncmp(url, "http://", 7) != 0)
		return false;
	host = url + 7;
	for (size_t i = 0; i < lengthof(loopback); i++)
	{
		size_t		n = strlen(loopback[i]);

		if (strncmp(host, loopback[i], n) == 0 && strchr(":/", host[n]) != NULL)
			return true;
	}
	return false;
}

/* Whether host (len bytes) matches pattern: a name, or *.domain for any name ending in .domain. */
static bool
host_matches(const char *host, size_t len, const char *pattern, size_t plen)
{
	if (plen > 2 && pattern[0] == '*' && pattern[1] == '.')
		return len > plen - 1 && pg_strncasecmp(host + len - (plen - 1), pattern + 1, plen - 1) == 0;
	return len == plen && pg_strncasecmp(host, pattern, len) == 0;
}

/*
 * Whether the token URL's host matches one of sdr_creds.outbound_hosts (any
 * host when it is empty). The host is what libcurl connects to: after any
 * userinfo, before the port; one with '%' or '\' matches nothing.
 */
static bool
token_host_allowed(const char *url)
{
	const char *host = strstr(url, "://") + 3;	/* token_url_is_valid() checked the scheme */
	const char *end = host + strcspn(host, "/?#");
	const char *at;
	const char *close;
	const char *p = sdr_outbound_hosts;

	if (p == NULL || p[strspn(p, " ,")] == '\0')
		return true;
	while ((at = memchr(host, '@', end - host)) != NULL)
		host = at + 1;
	if (*host == '[' && (close = memchr(host, ']', end - host)) != NULL)
		end = close + 1;
	else
		end = host + strcspn(host, ":/?#");
	if (end == host || memchr(host, '%', end - host) || memchr(host, '\\', end - host))
		return false;
	while (*p)
	{
		size_t		n;

		p += strspn(p, " ,");
		n = strcspn(p, " ,");
		if (n > 0 && host_matches(host, end - host, p, n))
			return true;
		p += n;
	}
	return false;
}

/* An OAuth client as the API shows it: every column but the secret. */
static void
append_client(StringInfo out, HeapTuple tup, TupleDesc desc)
{
	static const char *const names[K_COUNT] = {
		[K_ID] = "id", [K_ORG] = "org_id", [K_PROVIDER] = "provider", [K_TOKEN_URL] = "token_url",
		[K_CLIENT_ID] = "client_id", [K_AUTH_METHOD] = "auth_method", [K_SCOPES] = "scopes",
		[K_CREATED] = "created_at", [K_UPDATED] = "updated_at"};
	bool		isnull;

	appendStringInfoChar(out, '{');
	for (int k = 0; k < K_COUNT; k++)
	{
		Datum		d = SPI_getbinval(tup, desc, k + 1, &isnull);

		if (names[k] == NULL)
			continue;
		appendStringInfo(out, "%s\"%s\": ", k == 0 ? "" : ", ", names[k]);
		if (isnull)
			appendStringInfoString(out, "null");
		else if (k == K_ID || k == K_ORG)
			append_uuid(out, DatumGetUUIDP(d));
		else if (k == K_CREATED || k == K_UPDATED)
			append_timestamp(out, DatumGetTimestampTz(d));
		else
			escape_json(out, TextDatumGetCString(d));
	}
	appendStringInfoChar(out, '}');
}

/* The org's client for a provider, as JSON (after writing it). */
static void
append_client_of(StringInfo out, const pg_uuid_t *org, text *provider)
{
	Datum		arg = UUIDPGetDatum(org);
	uint64		n = stmt_run(S_CLIENT_LIST, &arg, NULL, false, 0);
	bool		isnull;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		text	   *p = DatumGetTextPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, K_PROVIDER + 1, &isnull));

		if (VARSIZE_ANY_EXHDR(p) == VARSIZE_ANY_EXHDR(provider) &&
			memcmp(VARDATA_ANY(p), VARDATA_ANY(provider), VARSIZE_ANY_EXHDR(p)) == 0)
			append_client(out, tup, SPI_tuptable->tupdesc);
	}
}

/* The fields of set_oauth_client(), checked. */
typedef struct ClientFields
{
	text	   *provider;
	text	   *token_url;
	char	   *client_id;
	char	   *secret;
	char	   *auth_method;
	char	   *scopes;
} ClientFields;

static void
client_fields(FunctionCallInfo fcinfo, ClientFields *f)
{
	text	   *args[6];

	for (int i = 0; i < 6; i++)
		args[i] = PG_ARGISNULL(i) ? NULL : PG_GETARG_TEXT_PP(i);
	f->provider = args[0];
	if (f->provider == NULL || !provider_checked(f->provider))
		SDR_ERROR("422", "provider must match ^[a-z0-9][a-z0-9_.-]{0,63}$");
	if (!token_url_is_valid(client_field(args[1], "token_url", TOKEN_URL_MAX, true)))
		SDR_ERROR("422", "token_url must be an https:// URL (http:// only to 127.0.0.1, localhost or [::1])");
	if (!token_host_allowed(text_to_cstring(args[1])))
		SDR_ERROR("422", "token_url's host is not in sdr_creds.outbound_hosts");
	f->token_url = args[1];
	f->client_id = client_field(args[2], "client_id", CLIENT_ID_MAX, true);
	f->secret = client_field(args[3], "client_secret", CLIENT_SECRET_MAX, true);
	f->auth_method = client_field(args[4], "auth_method", 32, true);
	if (strcmp(f->auth_method, "client_secret_basic") != 0 &&
		strcmp(f->auth_method, "client_secret_post") != 0)
		SDR_ERROR("422", "auth_method must be client_secret_basic or client_secret_post");
	f->scopes = client_field(args[5], "scopes", SCOPES_MAX, false);
}

/* Inserts or updates the org's client for f->provider, its secret sealed to the row. */
static void
write_client(const pg_uuid_t *org, const ClientFields *f)
{
	Datum		args[10];
	char		nulls[10] = "          ";
	pg_uuid_t	id;
	bool		isnull;
	int32		kv;

	for (int attempt = 0;; attempt++)
	{
		RowIdentity r;
		bool		exists;

		args[0] = UUIDPGetDatum(org);
		args[1] = PointerGetDatum(f->provider);
		exists = stmt_run(S_CLIENT_LOCK, args, NULL, false, 1) == 1;
		if (exists)
			id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		else if (attempt == 3)
			ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							errmsg("could not store the OAuth client: concurrent updates of the same provider")));
		else
			new_uuid(&id);
		r = oauth_client_identity(&id, org, f->provider, f->token_url, f->client_id,
								  f->auth_method, f->scopes);
		args[0] = UUIDPGetDatum(&id);
		args[1] = UUIDPGetDatum(org);
		args[2] = PointerGetDatum(f->provider);
		args[3] = PointerGetDatum(f->token_url);
		args[4] = CStringGetTextDatum(f->client_id);
		args[5] = CStringGetTextDatum(f->auth_method);
		args[6] = f->scopes ? CStringGetTextDatum(f->scopes) : (Datum) 0;
		nulls[6] = f->scopes ? ' ' : 'n';
		args[7] = PointerGetDatum(seal_credential(&r, f->secret, "{}", &kv));
		args[8] = Int32GetDatum(kv);
		args[9] = TimestampTzGetDatum(GetCurrentTimestamp());
		if (stmt_run(exists ? S_CLIENT_UPDATE : S_CLIENT_INSERT, args, nulls, false, 0) == 1)
			return;
	}
}

PG_FUNCTION_INFO_V1(sdr_creds_set_oauth_client);
Datum
sdr_creds_set_oauth_client(PG_FUNCTION_ARGS)
{
	pg_uuid_t	org;
	OwnerContext oc;
	ClientFields f;
	StringInfoData out;

	api_enter(fcinfo, ACT_SET_OAUTH_CLIENT, &oc, &org);
	client_fields(fcinfo, &f);
	initStringInfo(&out);
	SPI_connect();
	write_client(&org, &f);
	append_client_of(&out, &org, f.provider);
	SPI_finish();
	sodium_memzero(f.secret, strlen(f.secret));
	api_leave(&oc);
	PG_RETURN_TEXT_P(json_result(&out));
}

PG_FUNCTION_INFO_V1(sdr_creds_delete_oauth_client);
Datum
sdr_creds_delete_oauth_client(PG_FUNCTION_ARGS)
{
	pg_uuid_t	org;
	OwnerContext oc;
	text	   *provider;
	Datum		args[2];
	uint64		n;
	StringInfoData out;

	api_enter(fcinfo, ACT_DELETE_OAUTH_CLIENT, &oc, &org);
	if (PG_ARGISNULL(0))
		SDR_ERROR("422", "provider must not be null");
	provider = PG_GETARG_TEXT_PP(0);
	if (!provider_checked(provider))
		SDR_ERROR("404", "OAuth client not found");
	args[0] = UUIDPGetDatum(&org);
	args[1] = PointerGetDatum(provider);
	SPI_connect();
	n = stmt_run(S_CLIENT_DELETE, args, NULL, false, 0);
	SPI_finish();
	if (n == 0)
		SDR_ERROR("404", "OAuth client for provider '%s' not found", text_to_cstring(provider));
	api_leave(&oc);
	initStringInfo(&out);
	appendStringInfo(&out, "{\"message\": \"OAuth client for provider '%s' deleted successfully\"}",
					 text_to_cstring(provider));
	PG_RETURN_TEXT_P(json_result(&out));
}

PG_FUNCTION_INFO_V1(sdr_creds_list_oauth_clients);
Datum
sdr_creds_list_oauth_clients(PG_FUNCTION_ARGS)
{
	pg_uuid_t	org;
	OwnerContext oc;
	Datum		arg;
	uint64		n;
	StringInfoData out;

	api_enter(fcinfo, ACT_LIST_OAUTH_CLIENTS, &oc, &org);
	arg = UUIDPGetDatum(&org);
	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	SPI_connect();
	n = stmt_run(S_CLIENT_LIST, &arg, NULL, true, 0);
	for (uint64 i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(&out, ", ");
		append_client(&out, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
	}
	SPI_finish();
	appendStringInfoChar(&out, ']');
	api_leave(&oc);
	PG_RETURN_TEXT_P(json_result(&out));
}
