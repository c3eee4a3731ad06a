/*
 * refresh.h: token refresh on the database's side: a credential's expiry,
 * OAuth clients (oauth_clients.c), and the functions the refresher process
 * calls to claim due credentials and record the token endpoint's answer
 * (refresh.c).
 */
#ifndef SDR_REFRESH_H
#define SDR_REFRESH_H

#include "sdr_creds.h"

#include "crypto.h"

/* What store() keeps beside a credential's metadata for the refresher. */
typedef struct RefreshFields
{
	bool		has_expiry;
	TimestampTz expires_at;
	bool		refreshable;	/* has a refresh_token */
} RefreshFields;

/*
 * store(): metadata with its expiry as plain expires_at (RFC 3339, UTC),
 * from metadata.expires_in (seconds from now) or metadata.expires_at (a
 * timestamp or Unix seconds); expires_in and refresh_status are dropped
 * (a store re-authorizes). PT422 on a bad expiry.
 */
extern Jsonb *refresh_fields(Jsonb *metadata, TimestampTz now, RefreshFields *rf);

/*
 * What an OAuth client's secret is bound to: its row (id, org, provider),
 * token URL, client id, auth method and scopes.
 */
extern RowIdentity oauth_client_identity(const pg_uuid_t *id, const pg_uuid_t *org, text *provider,
										 text *token_url, const char *client_id,
										 const char *auth_method, const char *scopes);

/* Registers the end-of-transaction callback that forgets claimed credentials (from _PG_init). */
extern void refresh_init(void);

#endif
