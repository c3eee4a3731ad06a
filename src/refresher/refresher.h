/*
 * refresher.h: what the refresher's files share: its settings.
 *
 * sdr_creds_refresher refreshes OAuth tokens before they expire. It claims
 * due credentials through sdr_creds.refresh_claim() (one per transaction,
 * FOR UPDATE SKIP LOCKED: any number of refreshers may run), sends the RFC
 * 6749 section 6 refresh request with libcurl while the row stays locked,
 * and hands the answer to sdr_creds.refresh_record() in the same
 * transaction, which parses it and stores the new tokens. With --jwks it
 * also keeps issuers' public key sets current (sdr_creds.set_issuer()).
 * Every request is fenced to public addresses unless allowed (fence.h).
 */
#ifndef SDR_REFRESHER_H
#define SDR_REFRESHER_H

#include <stdbool.h>
#include <stddef.h>

/* One --jwks ISSUER=URL, and when it is next due (jwks.c). */
typedef struct JwksSource
{
	const char *issuer;
	const char *url;
	double		due_ms;			/* on the monotonic clock (log.h); 0: now */
} JwksSource;

typedef struct Options
{
	const char *db;				/* libpq conninfo */
	int			window;			/* seconds before expiry a token is refreshed */
	int			interval;		/* seconds between looks for due credentials */
	int			timeout;		/* seconds for one refresh request */
	long		max_response;	/* bytes of the token endpoint's answer */
	bool		allow_http_loopback;	/* http:// to 127.0.0.1, localhost, [::1], and loopback
										 * addresses past the fence (tests) */
	bool		allow_private_hosts;	/* connect to any non-public address but multicast
										 * and unspecified (fence.h) */
	const char *ca_file;		/* CA certificates to verify servers with, or NULL: the system's */
	JwksSource *jwks;			/* --jwks, in the order given */
	int			jwks_count;
	bool		once;			/* refresh what is due now, then exit */
} Options;

#endif
