/*
 * oauth.c: sends one refresh request (grant_type=refresh_token, the client
 * authenticated with HTTP Basic or in the body, RFC 6749 sections 2.3.1 and
 * 6) and collects the answer. Every buffer that held a secret is wiped
 * before it is freed.
 */
#define _GNU_SOURCE
#include "oauth.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RETRY_AFTER_MAX 86400

/* A growing buffer, wiped when it grows or is freed. */
typedef struct Buffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		max;			/* more than this is refused */
} Buffer;

static void
buffer_wipe_free(char *p, size_t len)
{
	if (p)
	{
		explicit_bzero(p, len);
		free(p);
	}
}

static bool
buffer_add(Buffer *b, const char *s, size_t n)
{
	if (b->len + n > b->max)
		return false;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = (b->len + n + 1) * 2;
		char	   *p = malloc(cap);

		if (p == NULL)
			return false;
		if (b->len)
			memcpy(p, b->data, b->len);
		buffer_wipe_free(b->data, b->cap);
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

static bool
buffer_add_str(Buffer *b, const char *s)
{
	return buffer_add(b, s, strlen(s));
}

/* Appends s form-urlencoded (RFC 6749 appendix B). */
static bool
buffer_add_encoded(Buffer *b, CURL *h, const char *s)
{
	char	   *e = curl_easy_escape(h, s, 0);
	bool		ok = e != NULL && buffer_add_str(b, e);

	if (e)
		buffer_wipe_free(e, strlen(e));
	return ok;
}

static bool
buffer_add_base64(Buffer *b, const unsigned char *s, size_t n)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	bool		ok = true;

	for (size_t i = 0; i < n && ok; i += 3)
	{
		unsigned	v = s[i] << 16 | (i + 1 < n ? s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
		char		out[4] = {digits[v >> 18 & 63], digits[v >> 12 & 63],
		i + 1 < n ? digits[v >> 6 & 63] : '=', i + 2 < n ? digits[v & 63] : '='};

		ok = buffer_add(b, out, 4);
	}
	return ok;
}

/* The request body; the client's credentials in it for client_secret_post. */
static bool
form_body(Buffer *b, CURL *h, const RefreshRequest *rq)
{
	bool		ok = buffer_add_str(b, "grant_type=refresh_token&refresh_token=") &&
		buffer_add_encoded(b, h, rq->refresh_token);

	if (ok && rq->scopes)
		ok = buffer_add_str(b, "&scope=") && buffer_add_encoded(b, h, rq->scopes);
	if (ok && strcmp(rq->auth_method, "client_secret_post") == 0)
		ok = buffer_add_str(b, "&client_id=") && buffer_add_encoded(b, h, rq->client_id) &&
			buffer_add_str(b, "&client_secret=") && buffer_add_encoded(b, h, rq->client_secret);
	return ok;
}

/* "Authorization: Basic base64(urlencode(id):urlencode(secret))" (RFC 6749 section 2.3.1). */
static bool
basic_header(Buffer *b, CURL *h, const RefreshRequest *rq)
{
	Buffer		pair = {.max = 16384};
	bool		ok = buffer_add_encoded(&pair, h, rq->client_id) && buffer_add_str(&pair, ":") &&
		buffer_add_encoded(&pair, h, rq->client_secret) &&
		buffer_add_str(b, "Authorization: Basic ") &&
		buffer_add_base64(b, (const unsigned char *) pair.data, pair.len);

	buffer_wipe_free(pair.data, pair.cap);
	return ok;
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	return buffer_add((Buffer *) arg, data, size * n) ? size * n : 0;	/* 0 stops the transfer */
}

/* Retry-After: seconds, or an HTTP date. */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	size_t		len = size * n;
	long	   *retry_after = arg;
	char		value[128];

	if (len > 12 && len < sizeof(value) + 12 && strncasecmp(data, "Retry-After:", 12) == 0)
	{
		size_t		vlen = len - 12;
		char	   *v = value;
		char	   *end;
		long		secs;

		memcpy(value, data + 12, vlen);
		value[vlen] = '\0';
		while (isspace((unsigned char) *v))
			v++;
		secs = strtol(v, &end, 10);
		if (end == v)
			secs = (long) (curl_getdate(v, NULL) - time(NULL));
		*retry_after = secs < 0 ? 0 : secs > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : secs;
	}
	return len;
}

bool
token_url_allowed(const char *url, bool allow_http_loopback)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	bool		ok = false;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		ok = strcmp(scheme, "https") == 0 ||
			(allow_http_loopback && strcmp(scheme, "http") == 0 &&
			 (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
			  strcmp(host, "[::1]") == 0));
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* A transport failure as a short code for refresh_record(). */
static const char *
transport_error(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_OPERATION_TIMEDOUT:
			return "timeout";
		case CURLE_WRITE_ERROR:
		case CURLE_FILESIZE_EXCEEDED:
			return "response_too_large";
		case CURLE_COULDNT_CONNECT:
			return "connect_failed";
		case CURLE_COULDNT_RESOLVE_HOST:
			return "resolve_failed";
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
			return "tls_failed";
		case CURLE_UNSUPPORTED_PROTOCOL:
			return "url_refused";
		case CURLE_GOT_NOTHING:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
			return "connection_lost";
		default:
			return "transport_error";
	}
}

/* The handle's options: where, what, how long, how much, and TLS checked. */
static void
set_options(CURL *h, const Options *o, const RefreshRequest *rq, const Buffer *form,
			struct curl_slist *headers, Buffer *body, long *retry_after)
{
	curl_easy_setopt(h, CURLOPT_URL, rq->token_url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, o->allow_http_loopback ? "https,http" : "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout * 1000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (o->timeout < 10 ? o->timeout : 10) * 1000L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) o->max_response);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "sdr_creds_refresher");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, form->data);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) form->len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, retry_after);
}

static void
headers_wipe_free(struct curl_slist *headers)
{
	for (struct curl_slist *l = headers; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(headers);
}

void
oauth_refresh(const RefreshRequest *rq, const Options *o, RefreshAnswer *a)
{
	CURL	   *h = curl_easy_init();
	Buffer		form = {.max = 65536};
	Buffer		auth = {.max = 65536};
	Buffer		body = {.max = (size_t) o->max_response};
	struct curl_slist *headers = NULL;
	CURLcode	rc;

	memset(a, 0, sizeof(*a));
	a->retry_after = -1;
	if (h == NULL || !form_body(&form, h, rq) ||
		(strcmp(rq->auth_method, "client_secret_basic") == 0 && !basic_header(&auth, h, rq)))
		a->error = "request_too_large";
	else
	{
		headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
		headers = curl_slist_append(headers, "Accept: application/json");
		if (auth.data)
			headers = curl_slist_append(headers, auth.data);
		set_options(h, o, rq, &form, headers, &body, &a->retry_after);
		rc = curl_easy_perform(h);
		if (rc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
		else
			a->error = transport_error(rc);
	}
	a->body = body.data;
	a->len = body.len;
	if (a->error)
		oauth_answer_free(a);	/* keep no partial body */
	headers_wipe_free(headers);
	buffer_wipe_free(form.data, form.cap);
	buffer_wipe_free(auth.data, auth.cap);
	curl_easy_cleanup(h);
}

void
oauth_answer_free(RefreshAnswer *a)
{
	buffer_wipe_free(a->body, a->len);
	a->body = NULL;
	a->len = 0;
}
