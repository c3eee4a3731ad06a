/* On-demand refresh (POST /integration-credentials/{id}/refresh): waiting
 * for a refresher without holding a worker thread or a pool connection.
 *
 * The request registers a waiter for its credential, then calls
 * sdr_creds.request_refresh() (which marks it due and wakes the refreshers),
 * then suspends its HTTP connection (libmicrohttpd): its worker thread and
 * its pool connection serve other requests meanwhile. A refresher's
 * refresh_record() notifies channel sdr_creds_refreshed when its transaction
 * commits, with "<credential id> <outcome>[ <error>]". One listener thread
 * holds one database connection of its own, opened at the first wait (so a
 * server that is never asked to refresh holds only its pool), LISTENing on
 * that channel: it ends the waits for that id and resumes their connections,
 * and ends the waits still pending at their bound (RW_TIMEOUT). The resumed
 * request answers from its worker (http.c).
 *
 * Nothing is missed: the waiter is registered while the connection already
 * listens, before request_refresh(), and the refresh it waits for commits
 * after request_refresh() (or, when a refresher held the row, after it was
 * seen held). A notification of a refresh that ended just before is taken
 * too: the credential was refreshed. If the listening connection is lost,
 * the waits end at their bound and the next wait reconnects. */
#define _GNU_SOURCE				/* pthread_setname_np */
#include "refresh.h"
#include "log.h"

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CHANNEL				"sdr_creds_refreshed"
#define RECONNECT_MS		1000	/* no connection attempt sooner after a failure */
#define UUID_LEN			36

struct refresh_waiter
{
	struct refresh_waiter *prev,
			   *next;
	struct refresh_waiter *resume_next;	/* on a resume list, after the result is set */
	struct MHD_Connection *conn;
	char		id[UUID_LEN + 1];
	double		deadline;		/* now_ms() */
	bool		suspended;
	enum refresh_result result;
	char		error[REFRESH_ERROR_MAX + 1];
};

static struct
{
	pthread_mutex_t mu;			/* guards the waiters, conn and the flags */
	pthread_mutex_t connect_mu;	/* one connection attempt at a time */
	struct refresh_waiter *waiters;
	PGconn	   *conn;			/* listening; closed only by the thread */
	double		next_connect;
	bool		healthy;		/* for logging a lost connection once */
	bool		no_more_waits;	/* stopping: waits end at once */
	bool		stopping;		/* the thread exits */
	int			wake_fd;		/* eventfd: waiters or conn changed */
	int			wait_ms;
	char	   *conninfo;
	pthread_t	thread;
	bool		running;
}			L = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.connect_mu = PTHREAD_MUTEX_INITIALIZER,
	.healthy = true,
	.wake_fd = -1,
};

static void
wake_thread(void)
{
	uint64_t	one = 1;

	if (write(L.wake_fd, &one, sizeof one) < 0)
	{
		/* the counter is full: the thread has wake-ups pending anyway */
	}
}

/* Ends a pending wait (under L.mu); a suspended one goes on *resume. */
static void
finish(struct refresh_waiter *w, enum refresh_result result, const char *error,
	   struct refresh_waiter **resume)
{
	if (w->result != RW_PENDING)
		return;
	w->result = result;
	snprintf(w->error, sizeof w->error, "%s", error ? error : "");
	if (w->suspended)
	{
		w->resume_next = *resume;
		*resume = w;
	}
}

/* Resumes the connections of a resume list, outside L.mu. A waiter may be
 * freed as soon as its connection is resumed: its next is read first. */
static void
resume_all(struct refresh_waiter *w)
{
	while (w != NULL)
	{
		struct refresh_waiter *next = w->resume_next;

		MHD_resume_connection(w->conn);
		w = next;
	}
}

/* Opens a connection that LISTENs on CHANNEL; NULL if it cannot. */
static PGconn *
listen_connect(void)
{
	static const char *const keys[] = {
		"connect_timeout", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "fallback_application_name", "dbname", NULL
	};
	const char *vals[] = {"5", "30", "10", "3", "sdr_creds_server_listen", L.conninfo, NULL};
	PGconn	   *conn = PQconnectdbParams(keys, vals, 1);
	PGresult   *res;
	bool		ok;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		PQfinish(conn);
		return NULL;
	}
	res = PQexec(conn, "LISTEN " CHANNEL);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
	{
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* Makes sure the listening connection is open (connecting now if needed and
 * not backing off); false if it is not. */
static bool
ensure_listening(void)
{
	PGconn	   *conn;
	bool		up;

	pthread_mutex_lock(&L.connect_mu);
	pthread_mutex_lock(&L.mu);
	up = L.conn != NULL;
	if (up || now_ms() < L.next_connect)
	{
		pthread_mutex_unlock(&L.mu);
		pthread_mutex_unlock(&L.connect_mu);
		return up;
	}
	pthread_mutex_unlock(&L.mu);
	conn = listen_connect();
	pthread_mutex_lock(&L.mu);
	L.conn = conn;
	if (conn == NULL)
		L.next_connect = now_ms() + RECONNECT_MS;
	if (conn == NULL && L.healthy)
		log_msg(LOG_ERROR, "refresh: cannot listen for refreshes; waits end after %d ms", L.wait_ms);
	else if (conn != NULL)
		log_msg(L.healthy ? LOG_DEBUG : LOG_INFO, "refresh: listening for refreshes");
	L.healthy = conn != NULL;
	pthread_mutex_unlock(&L.mu);
	pthread_mutex_unlock(&L.connect_mu);
	wake_thread();
	return conn != NULL;
}

/* The outcome word of a notification; RW_PENDING if unknown. */
static enum refresh_result
outcome_of(const char *s, size_t len)
{
	static const struct
	{
		const char *word;
		enum refresh_result result;
	}			outcomes[] = {
		{"refreshed", RW_REFRESHED},
		{"needs_reauthorization", RW_NEEDS_REAUTHORIZATION},
		{"retry", RW_RETRY},
	};

	for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
		if (strlen(outcomes[i].word) == len && memcmp(outcomes[i].word, s, len) == 0)
			return outcomes[i].result;
	return RW_PENDING;
}

/* "<id> <outcome>[ <error>]": ends the waits for id. */
static void
on_notify(const char *payload)
{
	struct refresh_waiter *resume = NULL;
	const char *word = payload + UUID_LEN + 1;
	size_t		len;
	enum refresh_result result;
	char		error[REFRESH_ERROR_MAX + 1] = "";

	if (strlen(payload) <= UUID_LEN + 1 || payload[UUID_LEN] != ' ')
		return;
	len = strcspn(word, " ");
	if ((result = outcome_of(word, len)) == RW_PENDING)
		return;
	if (word[len] == ' ' && strspn(word + len + 1, "abcdefghijklmnopqrstuvwxyz0123456789_") ==
		strlen(word + len + 1))
		snprintf(error, sizeof error, "%s", word + len + 1);
	pthread_mutex_lock(&L.mu);
	for (struct refresh_waiter *w = L.waiters; w; w = w->next)
		if (memcmp(w->id, payload, UUID_LEN) == 0)
			finish(w, result, error, &resume);
	pthread_mutex_unlock(&L.mu);
	resume_all(resume);
}

/* Ends the waits past their bound; returns ms until the next bound, -1 if none. */
static int
expire(void)
{
	struct refresh_waiter *resume = NULL;
	double		t = now_ms(),
				next = -1;

	pthread_mutex_lock(&L.mu);
	for (struct refresh_waiter *w = L.waiters; w; w = w->next)
	{
		if (w->result == RW_PENDING && w->deadline <= t)
			finish(w, RW_TIMEOUT, NULL, &resume);
		else if (w->result == RW_PENDING && (next < 0 || w->deadline < next))
			next = w->deadline;
	}
	pthread_mutex_unlock(&L.mu);
	resume_all(resume);
	return next < 0 ? -1 : (int) (next - t) + 1;
}

/* Reads what the listening connection received; false if it is lost. */
static bool
read_notifications(PGconn *conn)
{
	PGnotify   *n;

	if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK)
		return false;
	while ((n = PQnotifies(conn)) != NULL)
	{
		on_notify(n->extra);
		PQfreemem(n);
	}
	return true;
}

/* Closes a lost listening connection; the next wait reconnects. */
static void
drop_listener(PGconn *conn)
{
	pthread_mutex_lock(&L.mu);
	L.conn = NULL;
	L.healthy = false;
	pthread_mutex_unlock(&L.mu);
	log_msg(LOG_ERROR, "refresh: listening connection lost; waits end after %d ms", L.wait_ms);
	PQfinish(conn);
}

static void *
listener(void *arg)
{
	(void) arg;
	for (;;)
	{
		struct pollfd p[2] = {{.fd = L.wake_fd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
		int			timeout = expire();
		PGconn	   *conn;
		uint64_t	count;

		pthread_mutex_lock(&L.mu);
		conn = L.stopping ? NULL : L.conn;
		if (L.stopping)
		{
			pthread_mutex_unlock(&L.mu);
			return NULL;
		}
		pthread_mutex_unlock(&L.mu);
		p[1].fd = conn ? PQsocket(conn) : -1;
		if (conn != NULL && p[1].fd < 0)
		{
			drop_listener(conn);
			continue;
		}
		if (poll(p, 2, timeout) < 0)
			continue;
		if (p[0].revents & POLLIN)
			(void) !read(L.wake_fd, &count, sizeof count);
		if (conn != NULL && p[1].revents != 0 && !read_notifications(conn))
			drop_listener(conn);
	}
}

int
refresh_start(const char *conninfo, int wait_ms)
{
	L.conninfo = strdup(conninfo ? conninfo : "");
	L.wait_ms = wait_ms;
	L.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (L.conninfo == NULL || L.wake_fd < 0 || pthread_create(&L.thread, NULL, listener, NULL) != 0)
	{
		log_msg(LOG_ERROR, "cannot start the refresh listener");
		return -1;
	}
	L.running = true;
	pthread_setname_np(L.thread, "sdr-refresh");
	return 0;
}

struct refresh_waiter *
refresh_wait_begin(const char *id, struct MHD_Connection *c)
{
	struct refresh_waiter *w = calloc(1, sizeof *w);

	if (w == NULL)
		return NULL;
	ensure_listening();
	snprintf(w->id, sizeof w->id, "%s", id);
	w->conn = c;
	w->deadline = now_ms() + L.wait_ms;
	pthread_mutex_lock(&L.mu);
	if (L.no_more_waits)
		w->result = RW_TIMEOUT;
	w->next = L.waiters;
	if (L.waiters)
		L.waiters->prev = w;
	L.waiters = w;
	pthread_mutex_unlock(&L.mu);
	wake_thread();				/* to take its deadline into account */
	return w;
}

void
refresh_wait_suspend(struct refresh_waiter *w)
{
	bool		ended;

	MHD_suspend_connection(w->conn);
	pthread_mutex_lock(&L.mu);
	w->suspended = true;
	ended = w->result != RW_PENDING;	/* then no one else resumes it */
	pthread_mutex_unlock(&L.mu);
	if (ended)
		MHD_resume_connection(w->conn);
}

enum refresh_result
refresh_wait_result(struct refresh_waiter *w, char *error, size_t size)
{
	enum refresh_result result;

	pthread_mutex_lock(&L.mu);
	result = w->result;
	snprintf(error, size, "%s", w->error);
	pthread_mutex_unlock(&L.mu);
	return result;
}

void
refresh_wait_end(struct refresh_waiter *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&L.mu);
	if (w->prev)
		w->prev->next = w->next;
	else
		L.waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&L.mu);
	free(w);
}

void
refresh_stop_waiting(void)
{
	struct refresh_waiter *resume = NULL;

	pthread_mutex_lock(&L.mu);
	L.no_more_waits = true;
	for (struct refresh_waiter *w = L.waiters; w; w = w->next)
		finish(w, RW_TIMEOUT, NULL, &resume);
	pthread_mutex_unlock(&L.mu);
	resume_all(resume);
}

void
refresh_stop(void)
{
	if (L.running)
	{
		pthread_mutex_lock(&L.mu);
		L.stopping = true;
		pthread_mutex_unlock(&L.mu);
		wake_thread();
		pthread_join(L.thread, NULL);
		L.running = false;
	}
	PQfinish(L.conn);
	L.conn = NULL;
	if (L.wake_fd >= 0)
		close(L.wake_fd);
	L.wake_fd = -1;
	free(L.conninfo);
	L.conninfo = NULL;
}
