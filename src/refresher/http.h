/*
 * http.h: one HTTP request with libcurl, as every request of the refresher
 * is sent: https only (http to loopback when allowed), TLS verified, no
 * redirects, the answer's size and time capped, and the address connected
 * to fenced (fence.h). Used by oauth.c (token endpoints) and jwks.c.
 */
#ifndef SDR_REFRESHER_HTTP_H
#define SDR_REFRESHER_HTTP_H

#include <curl/curl.h>

#include "fence.h"
#include "refresher.h"

/* A growing buffer, wiped when it grows or is freed. */
typedef struct Buffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		max;			/* more than this is refused */
} Buffer;

bool		buffer_add(Buffer *b, const char *s, size_t n);
bool		buffer_add_str(Buffer *b, const char *s);
void		buffer_wipe_free(char *p, size_t len);

typedef struct HttpRequest
{
	const char *url;
	struct curl_slist *headers;
	const Buffer *post;			/* the body of a POST, or NULL for a GET */
	size_t		max_response;	/* bytes of the answer */
} HttpRequest;

typedef struct HttpAnswer
{
	long		status;			/* HTTP status, 0 if there was none */
	char	   *body;			/* as received (not NUL-terminated), or NULL */
	size_t		len;
	long		retry_after;	/* seconds from a Retry-After header, or -1 */
	long		max_age;		/* seconds from Cache-Control: max-age, or -1 */
	const char *error;			/* a transport error code (timeout, ...), or NULL */
	AddressClass refused;		/* the class of an address refused by the fence, or ADDRESS_PUBLIC */
} HttpAnswer;

/* Whether the refresher may send a request to this URL (its scheme and, for http, its host). */
bool		url_allowed(const char *url, bool allow_http_loopback);

/* Sends the request with handle h; fills in the answer (http_answer_free wipes and frees it). */
void		http_send(CURL *h, const HttpRequest *rq, const Options *o, HttpAnswer *a);
void		http_answer_free(HttpAnswer *a);

/* "refused: <what> resolves to a private address (use --allow-private-hosts)" into buf. */
const char *http_refusal(const HttpAnswer *a, const char *what, char *buf, size_t size);

#endif
