/*
 * oauth.h: one OAuth 2.0 refresh request (RFC 6749 section 6) with libcurl:
 * the client authenticated with HTTP Basic or in the body, sent by http.c.
 */
#ifndef SDR_REFRESHER_OAUTH_H
#define SDR_REFRESHER_OAUTH_H

#include "http.h"
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

/* The answer: status, body, Retry-After, or a transport error (http.h). */
typedef HttpAnswer RefreshAnswer;

/* Sends the request; fills in the answer (http_answer_free wipes and frees it). */
void		oauth_refresh(const RefreshRequest *rq, const Options *o, RefreshAnswer *a);

#endif
