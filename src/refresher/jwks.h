/*
 * jwks.h: keeping issuers' JSON Web Key Sets current (--jwks ISSUER=URL):
 * each is fetched over HTTPS by http.c and handed to sdr_creds.set_issuer()
 * when it changed. Backends never make HTTP requests; this does it for them.
 */
#ifndef SDR_REFRESHER_JWKS_H
#define SDR_REFRESHER_JWKS_H

#include <libpq-fe.h>

#include "refresher.h"

#define JWKS_MAX_BYTES (1024 * 1024)	/* a longer answer is abandoned */
#define JWKS_MIN_SECS 60		/* Cache-Control: max-age is honoured within these */
#define JWKS_MAX_SECS 86400
#define JWKS_DEFAULT_SECS 3600	/* without max-age */
#define JWKS_RETRY_SECS 60		/* after a failure (the last good keys stay) */

/*
 * Fetches every key set that is due, stores those that changed and logs one
 * line each; returns the milliseconds until the next is due (-1: no --jwks).
 */
long		jwks_refresh_due(PGconn *c, const Options *o);

#endif
