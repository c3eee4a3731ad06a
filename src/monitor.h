/*
 * monitor.h: what the API reports about each call, for the audit log and the
 * usage statistics ("monitor usage to detect unauthorized access").
 */
#ifndef SDR_MONITOR_H
#define SDR_MONITOR_H

#include "sdr_creds.h"

#include "org_context.h"

typedef enum
{
	ACT_AUTHENTICATE, ACT_STORE, ACT_GET_BY_PROVIDER, ACT_GET, ACT_LIST, ACT_DELETE,
	ACT_CREATE_API_KEY, ACT_REVOKE_API_KEY, ACT_ROTATE_KEYS,
	ACT_SET_OAUTH_CLIENT, ACT_DELETE_OAUTH_CLIENT, ACT_LIST_OAUTH_CLIENTS, ACT_REQUEST_REFRESH,
	ACT_REFRESH, ACT_SET_ISSUER, ACT_DELETE_ISSUER, ACT_COUNT
} ApiAction;

/* Each action's name, in audit lines and the usage statistics (usage.c). */
extern const char *const api_action_names[ACT_COUNT];

#define CLIENT_MAX 64			/* a client address, or "local" */
#define KEY_PREFIX_MAX 16		/* an API key's display prefix, or "unknown" / "jwt" */

/* An API call (monitor.c): begun, described, then ended or failed (SDR_ERROR). */
extern void monitor_call_detail(const char *name, const char *value);
extern void monitor_call_begin(ApiAction action);
extern void monitor_call_org(const pg_uuid_t *org);
extern void monitor_call_credential(const pg_uuid_t *id);
extern void monitor_call_provider(const char *provider, size_t len, bool valid);
extern void monitor_call_as_admin(void);
extern void monitor_call_key(const pg_uuid_t *key_id);
extern void monitor_call_end(void);

/* A successful authentication, and a failed one (principal: what is known of the caller). */
extern void monitor_authenticated(const pg_uuid_t *org, const char *principal);
extern void monitor_auth_failed(const char *principal, const char *key_prefix, const char *reason);

/* The client address an HTTP server gives for its peer, for the transaction. */
extern void monitor_set_client(const char *address);

/*
 * Registers the monitor's end-of-transaction callback (from _PG_init), which
 * writes what is still unwritten and forgets the call and the client.
 */
extern void monitor_init(void);

/*
 * Shared-memory usage statistics (usage.c). usage_init() is called from
 * _PG_init; the statistics exist only when the library is preloaded (no-ops
 * otherwise). Neither call writes to a table: they work on a hot standby and
 * in READ ONLY transactions.
 */
extern void usage_init(void);

/* One API call by principal for org: counted, failed or not, with its client and time. */
extern void usage_record(const pg_uuid_t *org, const char *principal, ApiAction action,
						 bool failed, const char *client);

/* One failed authentication: by key prefix (or "unknown"/"jwt") and client, with its reason. */
extern void usage_auth_failure(const char *key_prefix, const char *client, const char *reason);

#endif
