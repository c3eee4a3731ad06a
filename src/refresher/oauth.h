/*
 * oauth.h: one OAuth 2.0 refresh request (RFC 6749 section 6) with libcurl:
 * https only (http to loopback when allowed), TLS verified, no redirects,
 * the answer's size and time capped.
 */
#ifndef SDR_REFRESHER_OAUTH_H
#define SDR_REFRESHER_OAUTH_H

#include "refresher.h"

typedef struct RefreshRequest
{
	const char *token_url;
	const char *client_id;
	const char *client_secret;
	const char *auth_method;	/* client_secret_basic | client_secret_post */
	const char *scopes;			/* or NULL */
	const char *refresh_token;
} RefreshRequest;

typedef struct RefreshAnswer
{
	long		status;			/* HTTP status, 0 if there was none */
	char	   *body;			/* as received (not NUL-terminated), or NULL */
	size_t		len;
	long		retry_after;	/* seconds from a Retry-After header, or -1 */
	const char *error;			/* a transport error code (timeout, ...), or NULL */
} RefreshAnswer;

/* Whether the refresher may send a secret to this URL. */
bool		token_url_allowed(const char *url, bool allow_http_loopback);

/* Sends the request; fills in the answer (oauth_answer_free wipes and frees it). */
void		oauth_refresh(const RefreshRequest *rq, const Options *o, RefreshAnswer *a);
void		oauth_answer_free(RefreshAnswer *a);

#endif
