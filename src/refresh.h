/*
 * refresh.h: token refresh on the database's side (refresh.c): a credential's
 * expiry, as store() keeps it; the functions the refresher process calls to
 * claim due credentials and record the token endpoint's answer are SQL-only.
 */
#ifndef SDR_REFRESH_H
#define SDR_REFRESH_H

#include "sdr_creds.h"

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

/* Registers the end-of-transaction callback that forgets claimed credentials (from _PG_init). */
extern void refresh_init(void);

#endif
