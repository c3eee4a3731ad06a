/*
 * oauth.c: sends one refresh request (grant_type=refresh_token, the client
 * authenticated with HTTP Basic or in the body, RFC 6749 sections 2.3.1 and
 * 6) and collects the answer. Every buffer that held a secret is wiped
 * before it is freed.
 */
#define _GNU_SOURCE
#include "oauth.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

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
	struct curl_slist *headers = NULL;

	if (h == NULL || !form_body(&form, h, rq) ||
		(strcmp(rq->auth_method, "client_secret_basic") == 0 && !basic_header(&auth, h, rq)))
	{
		memset(a, 0, sizeof(*a));
		a->retry_after = a->max_age = -1;
		a->error = "request_too_large";
	}
	else
	{
		HttpRequest hr = {.url = rq->token_url, .post = &form, .max_response = (size_t) o->max_response};

		headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
		headers = curl_slist_append(headers, "Accept: application/json");
		if (auth.data)
			headers = curl_slist_append(headers, auth.data);
		hr.headers = headers;
		http_send(h, &hr, o, a);
	}
	headers_wipe_free(headers);
	buffer_wipe_free(form.data, form.cap);
	buffer_wipe_free(auth.data, auth.cap);
	curl_easy_cleanup(h);
}
