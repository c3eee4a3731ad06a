/*
 * monitor.c: what each API call reports: one audit line in the server log
 * (as sdr_creds.audit asks) and the shared-memory usage statistics (usage.c).
 *
 * An API function announces its call (monitor_call_begin), adds what it
 * learns (org, credential, provider), and ends it: monitor_call_end on
 * success, or the PTxyz error it raises (SDR_ERROR calls monitor_call_failed).
 * Failed authentications are reported by auth.c with their reason.
 *
 * An audit line names the action, org, principal (the API key's id, the
 * JWT's sub or the trusted service's role; never a key or token), credential,
 * provider, result and client address. Every field is printed from a fixed
 * alphabet, so no caller can write a line of its choosing.
 */
#include "sdr_creds.h"

#include "miscadmin.h"
#include "monitor.h"
#include "settings.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inet.h"
#include "utils/uuid.h"

#define PROVIDER_SHOWN_MAX 64

typedef struct MonitorCall
{
	bool		active;
	ApiAction	action;
	bool		has_org;
	pg_uuid_t	org;
	bool		has_credential;
	pg_uuid_t	credential;
	char		provider[PROVIDER_SHOWN_MAX + 1];
	char		principal[PRINCIPAL_MAX];	/* "" : the org context's */
	char		detail[64];		/* e.g. "key=<uuid>", or "" */
} MonitorCall;

static MonitorCall call;		/* the API call in progress */

/*
 * With sdr_creds.audit = all, a successful authentication is written in the
 * line of the call it authorises (the same principal, in the same
 * transaction): one line per request. One that no call follows gets its own
 * line when the next authentication comes or the transaction ends.
 */
static struct
{
	bool		pending;
	pg_uuid_t	org;
	char		principal[PRINCIPAL_MAX];
}			unlogged_auth;

#define ADDRESS_MAX 45			/* the longest IPv6 address in text */

/* The client address given by the caller (the HTTP server's peer), for this transaction. */
static char given_client[CLIENT_MAX];

static bool
is_write(ApiAction action)
{
	return action == ACT_STORE || action == ACT_DELETE || action == ACT_CREATE_API_KEY ||
		action == ACT_REVOKE_API_KEY || action == ACT_ROTATE_KEYS ||
		action == ACT_SET_OAUTH_CLIENT || action == ACT_DELETE_OAUTH_CLIENT ||
		action == ACT_REQUEST_REFRESH || action == ACT_REFRESH || action == ACT_SET_ISSUER ||
		action == ACT_DELETE_ISSUER;
}

/*
 * The backend's client: its address (inet_client_addr()), "local" for a Unix
 * socket, "-" for no client. It does not change: found once.
 */
static const char *
backend_client(void)
{
	static char address[CLIENT_MAX];

	if (address[0] == '\0')
	{
		LOCAL_FCINFO(fcinfo, 0);
		Datum		inet;

		InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
		inet = inet_client_addr(fcinfo);
		if (MyProcPid == 0 || !IsUnderPostmaster)
			strcpy(address, "-");
		else if (fcinfo->isnull)
			strcpy(address, "local");
		else
			strlcpy(address, DatumGetCString(DirectFunctionCall1(inet_out, inet)), sizeof(address));
	}
	return address;
}

/* The call's client: the address the caller gave, else the backend's client. */
static const char *
client_address(void)
{
	return given_client[0] ? given_client : backend_client();
}

/*
 * The client an HTTP server passes for its peer, for the rest of the
 * transaction. Anything but an IPv4 or IPv6 address in text is kept as "?".
 */
void
monitor_set_client(const char *address)
{
	size_t		len = strlen(address);

	if (len == 0 || len > ADDRESS_MAX ||
		strspn(address, "0123456789abcdefABCDEF:.") != len)
		address = "?";
	strlcpy(given_client, address, sizeof(given_client));
}

/* Copies s into out, each character outside [A-Za-z0-9._@:+-] as '?'. */
static void
safe_copy(char *out, size_t size, const char *s)
{
	size_t		n = 0;

	for (; s[n] != '\0' && n + 1 < size; n++)
		out[n] = (isalnum((unsigned char) s[n]) || strchr("._@:+-", s[n])) ? s[n] : '?';
	out[n] = '\0';
}

static void
uuid_text(char *out, bool known, const pg_uuid_t *uuid)
{
	if (!known)
		strcpy(out, "-");
	else
		strcpy(out, DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(uuid))));
}

/* Who makes the call in progress: an administrator's role, or the org context's principal. */
static const char *
call_principal(void)
{
	return call.principal[0] ? call.principal : org_context_principal();
}

/* One audit line for the call in progress, with its result. */
static void
audit_line(const char *principal, const char *result, const char *reason)
{
	char		org[UUID_LEN * 2 + 5];
	char		credential[UUID_LEN * 2 + 5];
	char		who[PRINCIPAL_MAX];
	char		client[CLIENT_MAX];

	uuid_text(org, call.has_org, &call.org);
	uuid_text(credential, call.has_credential, &call.credential);
	safe_copy(who, sizeof(who), principal);
	safe_copy(client, sizeof(client), client_address());
	ereport(LOG,
			(errmsg_internal("AUDIT: sdr_creds action=%s org=%s principal=%s credential=%s provider=%s result=%s client=%s%s%s%s%s",
							 api_action_names[call.action], org, who, credential,
							 call.provider[0] ? call.provider : "-", result, client,
							 given_client[0] ? " via=" : "", given_client[0] ? backend_client() : "",
							 reason ? " " : "", reason ? reason : ""),
			 errhidestmt(true), errhidecontext(true)));
}

void
monitor_call_begin(ApiAction action)
{
	memset(&call, 0, sizeof(call));
	call.active = true;
	call.action = action;
}

void
monitor_call_org(const pg_uuid_t *org)
{
	call.has_org = true;
	call.org = *org;
}

void
monitor_call_credential(const pg_uuid_t *id)
{
	call.has_credential = true;
	call.credential = *id;
}

/* The provider asked for, as given when it is a valid name, else "?". */
void
monitor_call_provider(const char *provider, size_t len, bool valid)
{
	if (valid && len <= PROVIDER_SHOWN_MAX)
	{
		memcpy(call.provider, provider, len);
		call.provider[len] = '\0';
	}
	else
		strcpy(call.provider, "?");
}

/* The call is an administrator's: its principal is "role:<the caller's role>". */
void
monitor_call_as_admin(void)
{
	snprintf(call.principal, sizeof(call.principal), "role:%s",
			 GetUserNameFromId(GetOuterUserId(), false));
}

/* An API key the call is about (create_api_key, revoke_api_key). */
void
monitor_call_key(const pg_uuid_t *key_id)
{
	snprintf(call.detail, sizeof(call.detail), "key=%s",
			 DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(key_id))));
}

/* Describes an authentication as the call in progress, for its audit line. */
static void
describe_authentication(const pg_uuid_t *org)
{
	memset(&call, 0, sizeof(call));
	call.action = ACT_AUTHENTICATE;
	if (org)
		monitor_call_org(org);
}

/* Writes the line of an authentication no call has carried yet, if there is one. */
static void
flush_unlogged_auth(void)
{
	MonitorCall outer;

	if (!unlogged_auth.pending)
		return;
	unlogged_auth.pending = false;
	outer = call;				/* authenticating from request.headers happens inside another call */
	describe_authentication(&unlogged_auth.org);
	audit_line(unlogged_auth.principal, "ok", NULL);
	call = outer;
}

/* The audit line of the call in progress; it carries the authentication before it. */
static void
audit_call(const char *result)
{
	const char *principal = call_principal();

	if (unlogged_auth.pending && strcmp(unlogged_auth.principal, principal) == 0)
		unlogged_auth.pending = false;
	flush_unlogged_auth();
	audit_line(principal, result, call.detail[0] ? call.detail : NULL);
}

/* What else the audit line says: name (a literal) = value, in the fixed alphabet. */
void
monitor_call_detail(const char *name, const char *value)
{
	char		safe[48];

	safe_copy(safe, sizeof(safe), value);
	snprintf(call.detail, sizeof(call.detail), "%s=%s", name, safe);
}

void
monitor_call_end(void)
{
	if (!call.active)
		return;
	call.active = false;
	if (call.has_org)
		usage_record(&call.org, call_principal(), call.action, false, client_address());
	if (sdr_audit == AUDIT_ALL || (sdr_audit == AUDIT_WRITES && is_write(call.action)))
		audit_call("ok");
}

void
monitor_call_failed(const char *status)
{
	if (!call.active)
		return;
	call.active = false;
	if (call.has_org)
		usage_record(&call.org, call_principal(), call.action, true, client_address());
	if (sdr_audit == AUDIT_ALL ||
		(sdr_audit == AUDIT_WRITES && (is_write(call.action) || strcmp(status, "403") == 0)))
		audit_call(status);
}

void
monitor_authenticated(const pg_uuid_t *org, const char *principal)
{
	usage_record(org, principal, ACT_AUTHENTICATE, false, client_address());
	if (sdr_audit == AUDIT_ALL)
	{
		flush_unlogged_auth();
		unlogged_auth.pending = true;
		unlogged_auth.org = *org;
		strlcpy(unlogged_auth.principal, principal, sizeof(unlogged_auth.principal));
	}
}

void
monitor_auth_failed(const char *principal, const char *key_prefix, const char *reason)
{
	char		why[48];

	usage_auth_failure(key_prefix, client_address(), reason);
	flush_unlogged_auth();
	describe_authentication(NULL);
	if (sdr_audit != AUDIT_NONE)
	{
		snprintf(why, sizeof(why), "reason=%s", reason);
		audit_line(principal, "401", why);
	}
}

/* At transaction end: the authentication no call carried is written, the call and client forgotten. */
static void
monitor_reset(XactEvent event, void *arg)
{
	if (!xact_event_ends(event))
		return;
	flush_unlogged_auth();
	call.active = false;
	given_client[0] = '\0';
}

void
monitor_init(void)
{
	RegisterXactCallback(monitor_reset, NULL);
}
