/* The HTTP side of the server: libmicrohttpd's callbacks, request limits,
 * reading bodies, writing JSON responses and the access log.
 *
 * libmicrohttpd runs a pool of epoll worker threads, one per CPU: sockets
 * are read and written without blocking, so a slow client holds up no one,
 * and no worker waits for the database. A request's body is collected (up to
 * max_body), then the request is routed (routes.c), its statement queued for
 * the database (pool.c) and its connection suspended; the database thread's
 * reply resumes it, and the worker sends the response. Headers, bodies, query strings
 * and raw paths are never logged. Every completed request is counted for
 * GET /metrics (metrics.c), by route pattern, never by path.
 *
 * Slow clients: each client address may hold at most max_per_addr of the
 * max_connections connections, and every request must be in within the
 * request deadline (deadline.c) of its connection's start or of the previous
 * response. A client that stops reading its response is cut off by
 * libmicrohttpd after CONNECTION_TIMEOUT seconds without progress. */
#define _GNU_SOURCE				/* accept4 */
#include "http.h"
#include "pool.h"
#include "deadline.h"
#include "routes.h"
#include "log.h"
#include "metrics.h"
#include "openapi.h"
#include "refresh.h"
#include "../messages.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECTION_TIMEOUT	30		/* seconds of inactivity */
#define LISTEN_BACKLOG		4096	/* the kernel caps it at net.core.somaxconn */
#define THREAD_STACK_SIZE	(256 * 1024)


struct request
{
	double		start;
	struct route_match m;
	char		method[8];
	int			status;			/* 0 until a response is queued */
	char		org_id[40];
	char	   *body;
	size_t		body_len;
	size_t		body_cap;
	size_t		received;		/* body bytes sent by the client */
	bool		too_large;
	bool		bearer;			/* presented a token in Authorization: Bearer (no X-API-Key) */
	struct refresh_waiter *waiter;	/* POST .../refresh: waiting for the refresher */
	struct MHD_Connection *conn;
	struct db_job job;			/* its statement, while the connection is suspended */
	bool		answered;		/* job.reply is in (set before the resume) */
	char		client[INET6_ADDRSTRLEN];
};

static struct http_config cfg;
static struct MHD_Daemon *daemon_;
static int	listen_fd = -1;
static pthread_t acceptor_thread;
static bool acceptor_running;
static atomic_int in_flight;
static atomic_bool draining;
static atomic_bool started;

/* The deadline watch of a request's connection (NULL if not watched). */
static struct watch *
conn_watch(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info ? info->socket_context : NULL;
}

/* Adds the common headers, queues the response and records the status. */
static enum MHD_Result
queue(struct MHD_Connection *c, struct request *r, int status,
	  struct MHD_Response *resp, const char *allow, bool retry)
{
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	deadline_pause(conn_watch(c));	/* a response is not cut off */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
							r->m.action == ACT_METRICS && status == 200 ?
							METRICS_CONTENT_TYPE : "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* RFC 6750 section 3.1: a presented Bearer token that failed is invalid_token */
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
								r->bearer ? "Bearer error=\"invalid_token\"" : "Bearer");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (retry)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (atomic_load(&draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	r->status = status;
	ret = MHD_queue_response(c, (unsigned int) status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Responds with a constant JSON body. */
static enum MHD_Result
respond_static(struct MHD_Connection *c, struct request *r, int status, const char *json)
{
	return queue(c, r, status,
				 MHD_create_response_from_buffer(strlen(json), (void *) json,
												 MHD_RESPMEM_PERSISTENT),
				 NULL, false);
}

/* Escapes src[0..len) as the inside of a JSON string into dst, which must hold
 * 6 * len + 1 bytes; returns the escaped length (dst is NUL-terminated). */
static size_t
json_escape(char *dst, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char	   *d = dst;

	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) src[i];

		if (c == '"' || c == '\\')
		{
			*d++ = '\\';
			*d++ = (char) c;
		}
		else if (c == '\n')
		{
			*d++ = '\\';
			*d++ = 'n';
		}
		else if (c < 0x20 || c == 0x7f)
		{
			*d++ = '\\';
			*d++ = 'u';
			*d++ = '0';
			*d++ = '0';
			*d++ = hex[c >> 4];
			*d++ = hex[c & 15];
		}
		else
			*d++ = (char) c;
	}
	*d = '\0';
	return (size_t) (d - dst);
}

/* Responds with {"detail": "<text>"}. */
static enum MHD_Result
respond_detail(struct MHD_Connection *c, struct request *r, int status,
			   const char *detail, const char *allow, bool retry)
{
	static const char head[] = "{\"detail\": \"";
	size_t		len = strlen(detail);
	char	   *buf = malloc(sizeof head + 6 * len + 3);
	struct MHD_Response *resp;
	size_t		n;

	if (buf == NULL)
		return MHD_NO;
	memcpy(buf, head, sizeof head - 1);
	n = sizeof head - 1;
	n += json_escape(buf + n, detail, len);
	memcpy(buf + n, "\"}", 3);
	n += 2;
	resp = MHD_create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL)
		free(buf);
	return queue(c, r, status, resp, allow, retry);
}

/* Responds with the metrics text (GET /metrics; it needs no credentials). */
static enum MHD_Result
respond_metrics(struct MHD_Connection *c, struct request *r)
{
	struct metrics_pool pool;
	size_t		len;
	char	   *text;
	struct MHD_Response *resp;

	db_pool_counts(&pool.busy, &pool.idle, &pool.broken);
	text = metrics_render(&pool, &len);
	if (text == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL)
		free(text);
	return queue(c, r, 200, resp, NULL, false);
}

static enum MHD_Result
sum_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void) kind;
	*(size_t *) cls += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static const char *
header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Whether s is a numeric IPv4 or IPv6 address. */
static bool
is_address(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The client's address, for the database's audit lines and statistics: the
 * peer's, or with --trust-forwarded-for the last X-Forwarded-For entry (the
 * one the proxy in front added) when it is an address. NULL if unknown. */
static const char *
client_address(struct MHD_Connection *c, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const char *forwarded = cfg.trust_forwarded_for ? header(c, "X-Forwarded-For") : NULL;

	if (forwarded != NULL)
	{
		const char *last = strrchr(forwarded, ',');
		size_t		n;

		last = last ? last + 1 : forwarded;
		last += strspn(last, " \t");
		n = strcspn(last, " \t");
		if (n < size && last[n + strspn(last + n, " \t")] == '\0')
		{
			memcpy(buf, last, n);
			buf[n] = '\0';
			if (is_address(buf))
				return buf;
		}
	}
	if (info == NULL || info->client_addr == NULL)
		return NULL;
	if (info->client_addr->sa_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *) info->client_addr)->sin_addr,
						 buf, (socklen_t) size);
	if (info->client_addr->sa_family == AF_INET6)
		return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) info->client_addr)->sin6_addr,
						 buf, (socklen_t) size);
	return NULL;
}

/* A query argument: NULL if absent, "" if present without a value. */
static const char *
query_arg(struct MHD_Connection *c, const char *name)
{
	const char *value = NULL;
	size_t		size = 0;

	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, name, strlen(name),
									  &value, &size) != MHD_YES)
		return NULL;
	return value ? value : "";
}

/* request_refresh() answered: the request waits for the refresh without
 * its worker or a pool connection (refresh.c), then respond_refreshed(). */
static enum MHD_Result
await_refresh(struct request *r, struct db_reply *reply)
{
	db_reply_free(reply);
	refresh_wait_suspend(r->waiter);
	return MHD_YES;
}

/* A database thread's reply is in (pool.c): the connection goes on, and
 * on_request() calls answer(). */
static void
db_done(struct db_job *job)
{
	struct request *r = job->cls;

	r->answered = true;
	MHD_resume_connection(r->conn);
}

/* Queues the request's statement (stmt) and suspends the connection until
 * the reply is in: the worker goes on with other connections meanwhile. */
static enum MHD_Result
submit(struct MHD_Connection *c, struct request *r, enum stmt_id stmt,
	   const char *api_key, const char *authorization)
{
	r->conn = c;
	r->job = (struct db_job) {
		.stmt = stmt, .nparams = r->m.nparams, .api_key = api_key,
		.authorization = authorization, .done = db_done, .cls = r,
		.client = client_address(c, r->client, sizeof r->client),
	};
	for (int i = 0; i < r->m.nparams && i < DB_MAX_PARAMS; i++)
		r->job.params[i] = r->m.params[i];
	MHD_suspend_connection(c);
	db_submit(&r->job);
	return MHD_YES;
}

/* Routes a request: answered here, or sent to the database (submit). */
static enum MHD_Result
dispatch(struct MHD_Connection *c, struct request *r)
{
	const char *api_key,
			   *authorization;

	switch (r->m.action)
	{
		case ACT_HEALTHZ:
			return respond_static(c, r, 200, "{\"status\": \"ok\"}");
		case ACT_READYZ:
			return submit(c, r, STMT_READY, NULL, NULL);
		case ACT_METRICS:
			return respond_metrics(c, r);
		case ACT_OPENAPI:
			return queue(c, r, 200, openapi_response(), NULL, false);
		case ACT_DB:
		case ACT_REFRESH:
			break;
		default:
			return MHD_NO;
	}

	/* credentials that are not UTF-8 text cannot be valid (and libpq would
	 * fail to send them as text) */
	api_key = header(c, "X-API-Key");
	authorization = header(c, MHD_HTTP_HEADER_AUTHORIZATION);
	r->bearer = api_key == NULL && authorization != NULL &&
		strncasecmp(authorization, "Bearer ", 7) == 0 &&
		authorization[7 + strspn(authorization + 7, " ")] != '\0';
	if ((api_key && !utf8_valid(api_key, strlen(api_key))) ||
		(authorization && !utf8_valid(authorization, strlen(authorization))))
		return respond_detail(c, r, 401, MSG_UNAUTHORIZED, NULL, false);

	/* registered before the request, so the refresh's end cannot be missed */
	if (r->m.action == ACT_REFRESH && r->m.invalid == NULL &&
		(r->waiter = refresh_wait_begin(r->m.params[0], c)) == NULL)
		return respond_detail(c, r, 503, MSG_UNAVAILABLE, NULL, true);
	/* with invalid arguments, authenticate only: 401 comes before 422 */
	return submit(c, r, r->m.invalid ? STMT_NONE : r->m.stmt, api_key, authorization);
}

/* Responds with the database's reply to the request's statement. */
static enum MHD_Result
answer(struct MHD_Connection *c, struct request *r)
{
	struct db_reply *reply = &r->job.reply;
	struct MHD_Response *resp;

	r->answered = false;
	memcpy(r->org_id, reply->org_id, sizeof r->org_id);
	if (r->m.action == ACT_READYZ)
		return reply->status == 200 ? respond_static(c, r, 200, "{\"status\": \"ready\"}") :
			respond_detail(c, r, 503, MSG_UNAVAILABLE, NULL, true);
	if (reply->status == 0)
		return respond_detail(c, r, 422, r->m.invalid, NULL, false);
	if (reply->body == NULL)
	{
		enum MHD_Result ret = respond_detail(c, r, reply->status, reply->detail, NULL, reply->retry);

		db_reply_free(reply);
		return ret;
	}
	if (r->m.action == ACT_REFRESH && r->waiter != NULL)
		return await_refresh(r, reply);
	/* copied, so the PGresult (a few KB, from the database thread's malloc
	 * arena) goes back at once rather than when the client has read it:
	 * 1.5 MB less at 2,000 connections */
	resp = MHD_create_response_from_buffer(reply->body_len, (void *) reply->body, MHD_RESPMEM_MUST_COPY);
	db_reply_free(reply);
	return queue(c, r, reply->status, resp, NULL, false);
}

/* A POST .../refresh resumed after its wait (refresh.c): the refreshed object
 * (as GET /integration-credentials/{id}), 409 if the provider refused the
 * refresh token, 502 if the refresh failed (the refresher retries later), or
 * 202 {"id", "refresh": "in_progress"} if it did not end within the bound. */
static enum MHD_Result
respond_refreshed(struct MHD_Connection *c, struct request *r)
{
	char		error[REFRESH_ERROR_MAX + 1];
	char		buf[256];
	const char *id = r->m.params[0];	/* a UUID (routes.c) */

	switch (refresh_wait_result(r->waiter, error, sizeof error))
	{
		case RW_REFRESHED:
			r->m.action = ACT_DB;
			r->m.stmt = STMT_GET_REFRESHED;
			return dispatch(c, r);
		case RW_NEEDS_REAUTHORIZATION:
			snprintf(buf, sizeof buf, "Integration credentials %s need re-authorization: the provider "
					 "refused the refresh token (invalid_grant)", id);
			return respond_detail(c, r, 409, buf, NULL, false);
		case RW_RETRY:
			snprintf(buf, sizeof buf, "The provider did not refresh integration credentials %s (%s); "
					 "the refresher retries later", id, error[0] ? error : "error");
			return respond_detail(c, r, 502, buf, NULL, false);
		default:
			snprintf(buf, sizeof buf, "{\"id\": \"%s\", \"refresh\": \"in_progress\"}", id);
			return queue(c, r, 202, MHD_create_response_from_buffer(strlen(buf), buf, MHD_RESPMEM_MUST_COPY),
						 NULL, false);
	}
}

/* Appends a chunk of the body, or only counts it once over the limit. */
static void
append_body(struct request *r, const char *data, size_t size)
{
	if (r->too_large || size > cfg.max_body - r->body_len)
	{
		r->too_large = true;
		return;
	}
	if (r->body_len + size + 1 > r->body_cap)
	{
		size_t		cap = r->body_cap ? r->body_cap : 1024;
		char	   *p;

		while (cap < r->body_len + size + 1)
			cap *= 2;
		if (cap > cfg.max_body + 1)
			cap = cfg.max_body + 1;
		p = realloc(r->body, cap);
		if (p == NULL)
		{
			r->too_large = true;
			return;
		}
		r->body = p;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, size);
	r->body_len += size;
	r->body[r->body_len] = '\0';
}

static void
copy_method(char *dst, size_t size, const char *method)
{
	size_t		n = strlen(method);

	for (size_t i = 0; i < n; i++)
		if (method[i] < 'A' || method[i] > 'Z')
			n = 0;
	if (n == 0 || n >= size)
		snprintf(dst, size, "-");
	else
		memcpy(dst, method, n + 1);
}

/* libmicrohttpd calls this when the headers are in, once per chunk of body,
 * then once more with no data. A response queued at the first call makes
 * libmicrohttpd close the connection afterwards, so only requests that must
 * not be read further (431, 413 by Content-Length) are answered there. */
static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
		   const char *method, const char *version, const char *upload,
		   size_t *upload_size, void **ctx)
{
	struct request *r = *ctx;

	(void) cls;
	(void) version;
	if (r == NULL)
	{
		size_t		header_bytes = 0;
		const char *length;

		r = calloc(1, sizeof *r);
		if (r == NULL)
			return MHD_NO;
		*ctx = r;
		atomic_fetch_add(&in_flight, 1);
		r->start = now_ms();
		copy_method(r->method, sizeof r->method, method);
		/* routed again once the request is in; this names it in the log */
		routes_match(method, url, NULL, NULL, &r->m);

		MHD_get_connection_values(c, MHD_HEADER_KIND, sum_header, &header_bytes);
		if (header_bytes > cfg.max_header)
			return respond_detail(c, r, 431, "Request header fields too large", NULL, false);
		length = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (length && strtoull(length, NULL, 10) > cfg.max_body)
			return respond_detail(c, r, 413, "Request body too large", NULL, false);
		return MHD_YES;
	}
	if (r->status != 0)
	{
		/* already answered; drop anything more the client sends */
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size != 0)
	{
		r->received += *upload_size;
		append_body(r, upload, *upload_size);
		*upload_size = 0;
		/* a chunked body far over the limit: stop reading, close */
		return r->received / 16 > cfg.max_body ? MHD_NO : MHD_YES;
	}
	if (r->answered)
		return answer(c, r);	/* resumed: the database replied */
	if (r->waiter != NULL)
		return respond_refreshed(c, r);	/* resumed: its wait ended */

	/* the whole request is in: its answer may take as long as the database */
	deadline_pause(conn_watch(c));
	if (r->too_large)
		return respond_detail(c, r, 413, "Request body too large", NULL, false);
	routes_match(method, url, query_arg(c, "limit"), query_arg(c, "offset"), &r->m);
	if (r->m.status == 404)
		return respond_detail(c, r, 404, "Not Found", NULL, false);
	if (r->m.status == 405)
		return respond_detail(c, r, 405, "Method Not Allowed", r->m.allow, false);
	if (r->m.wants_body)
		routes_set_body(&r->m, r->body ? r->body : "", r->body_len);
	return dispatch(c, r);
}

/* Writes the access log line and frees the request. */
static void
on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *r = *ctx;
	char		status[8] = "-";
	double		ms;

	(void) cls;
	deadline_restart(conn_watch(c));	/* for the next request on the connection */
	if (r == NULL)
		return;
	ms = now_ms() - r->start;
	metrics_request(r->m.route, r->method, r->status, ms);
	if (r->status)
		snprintf(status, sizeof status, "%d", r->status);
	log_msg(LOG_INFO, "%s %s %s %.3fms org=%s%s", r->method, r->m.pattern, status,
			ms, r->org_id[0] ? r->org_id : "-",
			toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
	refresh_wait_end(r->waiter);
	free(r->body);
	free(r);
	*ctx = NULL;
	atomic_fetch_sub(&in_flight, 1);
}

/* Starts and ends the deadline watch of each connection. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *info;

	(void) cls;
	metrics_connection(code == MHD_CONNECTION_NOTIFY_CLOSED ? -1 : 1);
	if (code == MHD_CONNECTION_NOTIFY_CLOSED)
	{
		deadline_close(*socket_context);
		*socket_context = NULL;
		return;
	}
	info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	*socket_context = info ? deadline_open(info->connect_fd) : NULL;
}

static size_t
unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void) cls;
	(void) c;
	return routes_unescape(s);
}

/* libmicrohttpd's own messages: errors while starting, debug afterwards
 * (they can name a request's path). */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char		buf[512];
	size_t		n;

	(void) cls;
	if (log_level < (atomic_load(&started) ? LOG_DEBUG : LOG_ERROR))
		return;
	vsnprintf(buf, sizeof buf, fmt, ap);
	n = strcspn(buf, "\n");
	buf[n] = '\0';
	log_msg(LOG_ERROR, "libmicrohttpd: %s", buf);
}

/* Accepts connections and hands each to libmicrohttpd, which spreads them
 * over its workers by socket number (its own accepting lets whichever
 * worker wakes first take many at once, leaving others idle). */
static void *
acceptor(void *arg)
{
	(void) arg;
	for (;;)
	{
		struct sockaddr_storage peer;
		socklen_t	len = sizeof peer;
		int			fd = accept4(listen_fd, (struct sockaddr *) &peer, &len, SOCK_CLOEXEC);

		if (fd >= 0)
		{
			/* on failure libmicrohttpd closes the socket (e.g. at the limit) */
			if (MHD_add_connection(daemon_, fd, (struct sockaddr *) &peer, len) != MHD_YES)
				metrics_rejected(REJECT_PER_ADDR);
			continue;
		}
		if (atomic_load(&draining))
			return NULL;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
		{
			struct timespec pause = {0, 10 * 1000000L};

			nanosleep(&pause, NULL);
		}
		else if (errno != EINTR && errno != ECONNABORTED && errno != EPERM && errno != EPROTO)
		{
			log_msg(LOG_ERROR, "accept failed: %s", strerror(errno));
			return NULL;
		}
	}
}

/* Opens the listening socket; returns the bound port or -1. */
static int
open_listener(void)
{
	struct sockaddr_storage addr;
	struct sockaddr_in *in4 = (struct sockaddr_in *) &addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &addr;
	socklen_t	len;
	int			one = 1;

	memset(&addr, 0, sizeof addr);
	if (inet_pton(AF_INET, cfg.listen, &in4->sin_addr) == 1)
	{
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t) cfg.port);
		len = sizeof *in4;
	}
	else if (inet_pton(AF_INET6, cfg.listen, &in6->sin6_addr) == 1)
	{
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t) cfg.port);
		len = sizeof *in6;
	}
	else
	{
		log_msg(LOG_ERROR, "--listen: not a numeric IPv4 or IPv6 address");
		return -1;
	}
	listen_fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 ||
		setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
		bind(listen_fd, (struct sockaddr *) &addr, len) != 0 ||
		listen(listen_fd, LISTEN_BACKLOG) != 0 ||
		getsockname(listen_fd, (struct sockaddr *) &addr, &len) != 0)
	{
		log_msg(LOG_ERROR, "cannot listen on %s port %d: %s", cfg.listen, cfg.port, strerror(errno));
		if (listen_fd >= 0)
			close(listen_fd);
		listen_fd = -1;
		return -1;
	}
	return ntohs(addr.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
}

/* Starts libmicrohttpd's workers, which take connections from acceptor(). */
static struct MHD_Daemon *
start_daemon(void)
{
	/* the memory per connection holds the header block, libmicrohttpd's
	 * bookkeeping and the reply headers, and is zeroed for every request, so
	 * it is kept small: a header block over max_header gets our JSON 431, one
	 * too big for this memory gets libmicrohttpd's own 431 */
	return MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_NO_LISTEN_SOCKET |
							MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
							0, NULL, NULL, on_request, NULL,
							MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
							MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) cfg.threads,
							MHD_OPTION_THREAD_STACK_SIZE, (size_t) THREAD_STACK_SIZE,
							MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg.max_header + 8 * 1024,
							MHD_OPTION_CONNECTION_LIMIT, (unsigned int) cfg.max_connections,
							MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) cfg.max_per_addr,
							MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) CONNECTION_TIMEOUT,
							MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
							MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
							MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
							MHD_OPTION_END);
}

int
http_start(const struct http_config *config)
{
	int			port;

	cfg = *config;
	if ((port = open_listener()) < 0)
		return -1;
	if (deadline_start(cfg.request_deadline) != 0 || (daemon_ = start_daemon()) == NULL)
	{
		log_msg(LOG_ERROR, "cannot start the HTTP workers");
		http_stop();
		return -1;
	}
	atomic_store(&started, true);
	if (pthread_create(&acceptor_thread, NULL, acceptor, NULL) != 0)
	{
		log_msg(LOG_ERROR, "cannot start the acceptor thread");
		http_stop();
		return -1;
	}
	acceptor_running = true;
	pthread_setname_np(acceptor_thread, "sdr-accept");
	return port;
}

void
http_stop_accepting(void)
{
	atomic_store(&draining, true);
	if (acceptor_running)
	{
		/* wakes accept() with an error; the thread then sees draining */
		shutdown(listen_fd, SHUT_RDWR);
		pthread_join(acceptor_thread, NULL);
		acceptor_running = false;
	}
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
}

int
http_in_flight(void)
{
	return atomic_load(&in_flight);
}

void
http_stop(void)
{
	http_stop_accepting();
	if (daemon_)
		MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	deadline_stop();
}
