/*
 * http.c: the one place the refresher's libcurl handles are set up: where,
 * how long, how much, TLS checked, no redirects, and every address fenced
 * before a socket is opened for it (CURLOPT_OPENSOCKETFUNCTION is called
 * after name resolution and before connect(), for each address tried, so
 * nothing is sent to a refused address and a name that resolves elsewhere
 * on a second lookup is checked again).
 */
#define _GNU_SOURCE
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define RETRY_AFTER_MAX 86400

void
buffer_wipe_free(char *p, size_t len)
{
	if (p)
	{
		explicit_bzero(p, len);
		free(p);
	}
}

bool
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

bool
buffer_add_str(Buffer *b, const char *s)
{
	return buffer_add(b, s, strlen(s));
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	return buffer_add((Buffer *) arg, data, size * n) ? size * n : 0;	/* 0 stops the transfer */
}

/* A header's value (after "Name:"), NUL-terminated in value, or NULL if it is not that header. */
static const char *
header_value(const char *data, size_t len, const char *name, char *value, size_t size)
{
	size_t		n = strlen(name);
	char	   *v = value;

	if (len <= n || len - n >= size || strncasecmp(data, name, n) != 0)
		return NULL;
	memcpy(value, data + n, len - n);
	value[len - n] = '\0';
	while (isspace((unsigned char) *v))
		v++;
	return v;
}

/* Retry-After: seconds, or an HTTP date; Cache-Control: max-age=seconds. */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	size_t		len = size * n;
	HttpAnswer *a = arg;
	char		value[256];
	const char *v;
	char	   *end;
	long		secs;

	if ((v = header_value(data, len, "Retry-After:", value, sizeof(value))) != NULL)
	{
		secs = strtol(v, &end, 10);
		if (end == v)
			secs = (long) (curl_getdate(v, NULL) - time(NULL));
		a->retry_after = secs < 0 ? 0 : secs > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : secs;
	}
	else if ((v = header_value(data, len, "Cache-Control:", value, sizeof(value))) != NULL)
	{
		for (const char *p = v; (p = strcasestr(p, "max-age=")) != NULL; p += 8)
			if (p == v || p[-1] == ',' || isspace((unsigned char) p[-1]))
			{
				secs = strtol(p + 8, &end, 10);
				if (end != p + 8)
					a->max_age = secs < 0 ? 0 : secs;
				break;
			}
	}
	return len;
}

bool
url_allowed(const char *url, bool allow_http_loopback)
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

/* A transport failure as a short code for refresh_record() and the log. */
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

/* What the socket callback needs: the fence's settings, and where to say what it refused. */
typedef struct Fence
{
	const Options *o;
	HttpAnswer *a;
} Fence;

/* libcurl's socket, opened only for an address the fence allows (before any byte is sent). */
static curl_socket_t
open_socket(void *arg, curlsocktype purpose __attribute__((unused)), struct curl_sockaddr *addr)
{
	Fence	   *f = arg;
	AddressClass c = address_class(&addr->addr);

	if (!address_allowed(c, f->o->allow_http_loopback, f->o->allow_private_hosts))
	{
		f->a->refused = c;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* The handle's options: where, what, how long, how much, TLS checked, the fence. */
static void
set_options(CURL *h, const Options *o, const HttpRequest *rq, Buffer *body, HttpAnswer *a, Fence *f)
{
	curl_easy_setopt(h, CURLOPT_URL, rq->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, o->allow_http_loopback ? "https,http" : "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout * 1000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (o->timeout < 10 ? o->timeout : 10) * 1000L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) rq->max_response);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "sdr_creds_refresher");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, rq->headers);
	if (rq->post)
	{
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->post->data);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) rq->post->len);
	}
	else
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, f);
}

void
http_send(CURL *h, const HttpRequest *rq, const Options *o, HttpAnswer *a)
{
	Buffer		body = {.max = rq->max_response};
	Fence		f = {.o = o, .a = a};
	CURLcode	rc;

	memset(a, 0, sizeof(*a));
	a->retry_after = -1;
	a->max_age = -1;
	set_options(h, o, rq, &body, a, &f);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
	else
		a->error = a->refused != ADDRESS_PUBLIC ? address_class_code(a->refused) : transport_error(rc);
	a->body = body.data;
	a->len = body.len;
	if (a->error)
		http_answer_free(a);	/* keep no partial body */
}

void
http_answer_free(HttpAnswer *a)
{
	buffer_wipe_free(a->body, a->len);
	a->body = NULL;
	a->len = 0;
}

const char *
http_refusal(const HttpAnswer *a, const char *what, char *buf, size_t size)
{
	bool		never = !address_allowed(a->refused, true, true);

	snprintf(buf, size, "refused: %s resolves to a%s %s address (%s)", what,
			 strchr("aeiou", address_class_name(a->refused)[0]) ? "n" : "",
			 address_class_name(a->refused), never ? "never allowed" : "use --allow-private-hosts");
	return buf;
}
