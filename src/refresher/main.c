/*
 * main.c: sdr_creds_refresher's settings, its loop and how it stops.
 *
 *   sdr_creds_refresher --db CONNINFO [--window 300] [--interval 30]
 *                       [--timeout 10] [--max-response 65536]
 *                       [--jwks ISSUER=URL]... [--ca-file FILE]
 *                       [--allow-private-hosts] [--allow-http-loopback] [--once]
 *
 * It refreshes every due credential, one transaction each, and the key sets
 * of --jwks that are due, then waits for --interval seconds (less when a
 * key set is due sooner) or a notification on channel sdr_creds_refresh
 * (request_refresh()). SIGTERM or SIGINT lets the refresh in flight finish,
 * then it exits 0. A lost database connection is reopened with back-off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cycle.h"
#include "http.h"
#include "jwks.h"
#include "kept.h"
#include "log.h"
#include "refresher.h"

/* Set by SIGTERM/SIGINT: finish the refresh in flight, then exit. */
static volatile sig_atomic_t stopping = 0;
static int wake_pipe[2] = {-1, -1};

static void
on_stop(int sig __attribute__((unused)))
{
	int			saved = errno;

	stopping = 1;
	if (write(wake_pipe[1], "x", 1) < 0)
		errno = saved;			/* the pipe is full: a wake-up is pending anyway */
	errno = saved;
}

static void
usage(void)
{
	fprintf(stderr, "usage: sdr_creds_refresher --db CONNINFO [--window SECS] [--interval SECS]\n"
			"         [--timeout SECS] [--max-response BYTES] [--jwks ISSUER=URL]... [--ca-file FILE]\n"
			"         [--allow-private-hosts] [--allow-http-loopback] [--once]\n");
	exit(2);
}

/* A whole number within [min, max], or usage. */
static long
number(const char *s, long min, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage();
	return v;
}

/* --jwks ISSUER=URL (split at the first "=http"): one more source. */
static void
add_jwks(Options *o, char *arg)
{
	char	   *eq = strstr(arg, "=http");
	JwksSource *more;

	if (eq == NULL || eq == arg || o->jwks_count >= 64 ||
		(more = realloc(o->jwks, (o->jwks_count + 1) * sizeof(*more))) == NULL)
		usage();
	*eq = '\0';
	o->jwks = more;
	o->jwks[o->jwks_count++] = (JwksSource) {.issuer = arg, .url = eq + 1};
}

static void
parse_options(int argc, char **argv, Options *o)
{
	static const struct option longs[] = {
		{"db", required_argument, NULL, 'd'}, {"window", required_argument, NULL, 'w'},
		{"interval", required_argument, NULL, 'i'}, {"timeout", required_argument, NULL, 't'},
		{"max-response", required_argument, NULL, 'm'},
		{"allow-http-loopback", no_argument, NULL, 'l'}, {"once", no_argument, NULL, '1'},
		{"allow-private-hosts", no_argument, NULL, 'p'}, {"ca-file", required_argument, NULL, 'c'},
		{"jwks", required_argument, NULL, 'j'},
		{NULL, 0, NULL, 0}};
	int			c;

	*o = (Options) {.window = 300, .interval = 30, .timeout = 10, .max_response = 65536};
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1)
	{
		switch (c)
		{
			case 'd': o->db = optarg; break;
			case 'w': o->window = (int) number(optarg, 0, 30 * 86400); break;
			case 'i': o->interval = (int) number(optarg, 1, 86400); break;
			case 't': o->timeout = (int) number(optarg, 1, 300); break;
			case 'm': o->max_response = number(optarg, 1024, 1024 * 1024); break;
			case 'l': o->allow_http_loopback = true; break;
			case '1': o->once = true; break;
			case 'p': o->allow_private_hosts = true; break;
			case 'c': o->ca_file = optarg; break;
			case 'j': add_jwks(o, optarg); break;
			default: usage();
		}
	}
	if (optind != argc || o->db == NULL)
		usage();
	for (int i = 0; i < o->jwks_count; i++)
		if (!url_allowed(o->jwks[i].url, o->allow_http_loopback))
		{
			fprintf(stderr, "sdr_creds_refresher: --jwks %s: the URL must be https://\n", o->jwks[i].issuer);
			exit(2);
		}
}

/*
 * A connection listening on sdr_creds_refresh, or NULL (logged). An idle
 * transaction (a refresher stopped mid-refresh) ends after the request's
 * time and a margin, releasing its claim.
 */
static PGconn *
connect_db(const Options *o)
{
	const char *keys[] = {"dbname", "application_name", "client_encoding", NULL};
	const char *values[] = {o->db, "sdr_creds_refresher", "UTF8", NULL};
	PGconn	   *c = PQconnectdbParams(keys, values, 1);
	char		sql[128];
	PGresult   *r;

	if (PQstatus(c) != CONNECTION_OK)
	{
		rlog("database: could not connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	snprintf(sql, sizeof(sql), "SET idle_in_transaction_session_timeout = '%ds'; "
			 "LISTEN sdr_creds_refresh", o->timeout + 60);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
	{
		rlog("database: could not listen: %s", PQresultErrorMessage(r));
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	return c;
}

/* Sleeps up to ms, waking for a notification, a signal or a closed connection. */
static void
wait_for_work(PGconn *c, int ms)
{
	struct pollfd fds[2] = {{.fd = wake_pipe[0], .events = POLLIN},
	{.fd = c ? PQsocket(c) : -1, .events = POLLIN}};
	char		buf[64];
	PGnotify   *n;

	if (poll(fds, c ? 2 : 1, ms) <= 0)
		return;
	if (fds[0].revents & POLLIN)
		while (read(wake_pipe[0], buf, sizeof(buf)) > 0)
			;
	if (c && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)))
	{
		PQconsumeInput(c);
		while ((n = PQnotifies(c)) != NULL)
			PQfreemem(n);
	}
}

static void
install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_stop};

	if (pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
	{
		perror("pipe2");
		exit(1);
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/*
 * Refreshes what is due, then the key sets that are due; false if the
 * connection was lost. *wait_ms: until the next key set is due, or -1.
 */
static bool
refresh_due(PGconn *c, const Options *o, long *wait_ms)
{
	int			rc;

	while (!stopping && (rc = refresh_one(c, o)) == 1)
		;
	*wait_ms = stopping ? -1 : jwks_refresh_due(c, o);
	return PQstatus(c) == CONNECTION_OK;
}

int
main(int argc, char **argv)
{
	Options		o;
	PGconn	   *c = NULL;
	int			backoff_ms = 100;
	long		jwks_ms;
	size_t		kept;

	parse_options(argc, argv, &o);
	install_signals();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	rlog("refresher started: window=%ds interval=%ds timeout=%ds max-response=%ld jwks=%d%s%s",
		 o.window, o.interval, o.timeout, o.max_response, o.jwks_count,
		 o.allow_http_loopback ? " allow-http-loopback" : "",
		 o.allow_private_hosts ? " allow-private-hosts" : "");
	while (!stopping)
	{
		if (c == NULL && (c = connect_db(&o)) == NULL)
		{
			wait_for_work(NULL, backoff_ms);
			backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
			continue;
		}
		backoff_ms = 100;
		if (!refresh_due(c, &o, &jwks_ms))
		{
			PQfinish(c);
			c = NULL;
			continue;
		}
		if (o.once)
			break;
		wait_for_work(c, jwks_ms >= 0 && jwks_ms < o.interval * 1000L ? (int) jwks_ms : o.interval * 1000);
	}
	PQfinish(c);
	free(o.jwks);
	curl_global_cleanup();
	if ((kept = kept_clear()) > 0)
		rlog("refresher stopping: %zu kept answers dropped unstored (no primary took them)", kept);
	rlog("refresher stopped");
	return 0;
}
