/* The database pools: a fixed pool of libpq connections to the primary
 * (--db) and one to the standbys (--db-read), each connection with a
 * thread that runs batches of queued jobs, reconnection with backoff.
 *
 * Each request is a job: one statement that authenticates
 * (authenticate_headers()) and makes the route's call, with a Sync, so both
 * run in one implicit transaction (the org context lives until it ends) and
 * no two requests share one. The HTTP workers queue jobs and go on; each
 * connection has a thread that takes every job waiting (up to BATCH_MAX),
 * sends them all in one pipeline (pipeline.c), reads their results in order
 * and hands each back. Under load a round trip thus serves many requests:
 * the database wakes once per batch, not once per request. A connection
 * that fails is closed; its thread reconnects for the next batch, no sooner
 * than the pool's backoff allows. With --no-prepare the statements are not
 * prepared but sent with their text each time (statements.h). */
#define _GNU_SOURCE				/* pthread_setname_np */
#include "pool.h"
#include "grants.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "reply.h"
#include "statements.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		2000
#define BATCH_MAX			32		/* jobs sent in one pipeline */
#define STALL_MS			5		/* a job waits no longer for a running batch */
#define THREAD_STACK_SIZE	(256 * 1024)


struct pool;

/* A connection and the thread that runs its batches. */
struct slot
{
	PGconn	   *conn;
	PGcancel   *cancel;			/* changed only under the pool mutex */
	struct stmt_mode mode;		/* how conn sends the statements */
	bool		busy;			/* running a batch */
	struct pool *pool;
	pthread_t	thread;
	bool		started;
};

/* A pool of connections to one database: the primary (--db), or the
 * standbys that serve reads (--db-read). */
struct pool
{
	const char *name;			/* for the log: "database", "read database" */
	pthread_mutex_t mu;			/* guards busy, cancel, the backoff and the queue */
	pthread_cond_t work;		/* a job was queued, or stopping */
	struct db_job *head;		/* the jobs waiting, oldest first */
	struct db_job *tail;
	int			queued;			/* jobs waiting */
	int			idle_threads;	/* waiting on work */
	int			sleepers;		/* of those, waiting with no time limit */
	int			busy_threads;	/* running a batch */
	bool		stopping;		/* threads exit once the queue is empty */
	struct slot *slots;
	int			size;
	double		next_connect;	/* no connection attempt before this */
	double		backoff;		/* the next wait after a failure, ms */
	double		connected_at;	/* when the last attempt succeeded */
	bool		healthy;		/* last attempt succeeded (for logging) */
	int			told_missing;	/* grants_missing() bits already logged */
	bool		prepare;		/* prepare the statements (not --no-prepare) */
	char	   *conninfo;		/* NULL: not configured */
};

static struct pool primary = {
	.name = "database", .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
	.healthy = true,
};
static struct pool replica = {
	.name = "read database", .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
	.healthy = true,
};

/* The level of the pool's connection errors: logged once it is unhealthy. */
static int
error_level(const struct pool *p)
{
	return p->healthy ? LOG_ERROR : LOG_DEBUG;
}

/* After the grants check (grants.h), how the connection sends the
 * statements; prepares them unless --no-prepare. False if that failed. */
static bool
prepare_all(struct pool *p, PGconn *conn, struct stmt_mode *mode)
{
	int			missing = grants_missing(conn, p->name, error_level(p), &p->told_missing);

	mode->prepared = p->prepare;
	mode->client_arg = !(missing & GRANT_CLIENT_ADDRESS);
	return missing >= 0 &&
		(!mode->prepared || statements_prepare(conn, mode->client_arg, error_level(p)));
}

/* Opens one connection, prepares the statements (*mode says how they are
 * sent) and enters pipeline mode. */
static PGconn *
connect_one(struct pool *p, struct stmt_mode *mode)
{
	/* Defaults first: the user's conninfo (dbname, expanded) overrides them;
	 * client_encoding comes last because request text is sent as UTF-8. */
	static const char *const keys[] = {
		"connect_timeout", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "fallback_application_name", "dbname",
		"client_encoding", NULL
	};
	const char *vals[] = {
		"5", "30", "10", "3", "sdr_creds_server", p->conninfo, "UTF8", NULL
	};
	char		buf[256];
	PGconn	   *conn = PQconnectdbParams(keys, vals, 1);

	if (conn == NULL)
		return NULL;
	if (PQstatus(conn) != CONNECTION_OK)
	{
		log_msg(error_level(p), "%s connection failed: %s", p->name,
				first_line(PQerrorMessage(conn), buf, sizeof buf));
		PQfinish(conn);
		return NULL;
	}
	if (!prepare_all(p, conn, mode) || !PQenterPipelineMode(conn))
	{
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* An idle connection is usable if libpq thinks it is fine and the server has
 * sent nothing since the last request (a terminated backend sends an error
 * and closes the socket, which makes it readable). */
static bool
conn_usable(PGconn *conn)
{
	struct pollfd p;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		return false;
	p.fd = PQsocket(conn);
	p.events = POLLIN;
	p.revents = 0;
	return p.fd >= 0 && poll(&p, 1, 0) == 0;
}

static void
drop_conn(struct pool *p, struct slot *s)
{
	PGconn	   *conn = s->conn;

	pthread_mutex_lock(&p->mu);
	if (s->cancel)
		PQfreeCancel(s->cancel);
	s->cancel = NULL;
	s->conn = NULL;
	pthread_mutex_unlock(&p->mu);
	if (conn)
		PQfinish(conn);
}

/* After a failed attempt: 100 ms, 200 ms, ... up to 2 s between attempts.
 * Called under the pool mutex. */
static void
back_off(struct pool *p, double t)
{
	if (t >= p->next_connect)
	{
		p->backoff = p->backoff < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : p->backoff * 2;
		if (p->backoff > BACKOFF_MAX_MS)
			p->backoff = BACKOFF_MAX_MS;
		p->next_connect = t + p->backoff;
	}
	if (p->healthy)
		log_msg(LOG_ERROR, "%s unavailable; retrying with backoff up to %d ms",
				p->name, BACKOFF_MAX_MS);
	p->healthy = false;
}

/* Reconnects a slot unless the pool is backing off; false if no connection. */
static bool
reconnect(struct pool *p, struct slot *s)
{
	PGconn	   *conn;
	struct stmt_mode mode;
	double		t,
				started;

	pthread_mutex_lock(&p->mu);
	started = t = now_ms();
	if (t < p->next_connect)
	{
		pthread_mutex_unlock(&p->mu);
		return false;
	}
	pthread_mutex_unlock(&p->mu);

	conn = connect_one(p, &mode);

	pthread_mutex_lock(&p->mu);
	t = now_ms();
	/* an attempt that started before another one succeeded says nothing
	 * about the database now */
	if (conn == NULL && p->connected_at < started)
		back_off(p, t);
	else if (conn != NULL)
	{
		if (!p->healthy)
			log_msg(LOG_INFO, "%s connection restored", p->name);
		p->healthy = true;
		p->backoff = 0;
		p->next_connect = 0;
		p->connected_at = t;
		s->conn = conn;
		s->mode = mode;
		s->cancel = PQgetCancel(conn);
		log_msg(LOG_DEBUG, "%s connection %d opened", p->name, (int) (s - p->slots));
	}
	pthread_mutex_unlock(&p->mu);
	return conn != NULL;
}

/* The slot's connection, open and idle, reconnecting if needed; false if
 * there is none (the pool is backing off, or the database is unreachable). */
static bool
ensure_open(struct pool *p, struct slot *s)
{
	if (conn_usable(s->conn))
		return true;
	if (s->conn)
		log_msg(LOG_DEBUG, "%s connection %d closed by the server", p->name, (int) (s - p->slots));
	drop_conn(p, s);
	if (!reconnect(p, s))
		return false;
	metrics_reconnect();
	return true;
}

static void enqueue(struct pool *p, struct db_job *job);

/* Hands a job back, or a read the standbys could not answer (no
 * connection, connection lost, a conflict with recovery: any 503) to the
 * primary. */
static void
complete(struct db_job *job)
{
	if (job->on_replica && job->reply.status == 503)
	{
		db_reply_free(&job->reply);
		metrics_read_fallback();
		enqueue(&primary, job);
		return;
	}
	job->done(job);
}

/* Sends a batch's statements in one pipeline and reads their results in
 * order; every job is completed, 503 if the connection failed before its
 * results came. */
static void
run_batch(struct pool *p, struct slot *s, struct db_job **jobs, int n)
{
	bool		broken = !ensure_open(p, s);
	double		t = now_ms();

	if (!broken)
		broken = !pipeline_send(s->conn, &s->mode, jobs, n);
	for (int i = 0; i < n; i++)
	{
		pipeline_read(s->conn, jobs[i], p->name, t, &broken);
		complete(jobs[i]);
	}
	if (broken)
		drop_conn(p, s);
}

/* What the standbys may serve: authentication and the reads. */
static bool
is_read(enum stmt_id stmt)
{
	return stmt == STMT_NONE || stmt == STMT_GET_BY_PROVIDER || stmt == STMT_GET ||
		stmt == STMT_LIST;
}

/* Whether a waiting thread takes the queued jobs now: when no batch is
 * running (jobs that come while one runs wait to make the next batch, so
 * under load a round trip serves many requests), when they would fill a
 * batch (the database falls behind: run batches side by side), or when the
 * oldest has waited STALL_MS (a batch held up, say by a write waiting for a
 * lock, does not hold up the rest). Called under the pool mutex. */
static bool
may_take(const struct pool *p)
{
	return p->head != NULL &&
		(p->busy_threads == 0 || p->queued >= BATCH_MAX || now_ms() - p->head->queued_at >= STALL_MS);
}

/* Waits on the pool's condition, at most STALL_MS when jobs are queued. */
static void
wait_for_work(struct pool *p)
{
	struct timespec until;

	p->idle_threads++;
	if (p->head == NULL)
	{
		p->sleepers++;
		pthread_cond_wait(&p->work, &p->mu);
		p->sleepers--;
	}
	else
	{
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += STALL_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&p->work, &p->mu, &until);
	}
	p->idle_threads--;
}

/* Takes a batch of queued jobs (up to BATCH_MAX, ending with the first
 * write: reads behind a write would wait for its locks), waiting until
 * may_take(); 0 when the pool stops and its queue is empty. */
static int
take_batch(struct pool *p, struct slot *s, struct db_job **jobs)
{
	int			n = 0;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping && !may_take(p))
		wait_for_work(p);
	while (p->head != NULL && n < BATCH_MAX && (n == 0 || is_read(jobs[n - 1]->stmt)))
	{
		jobs[n++] = p->head;
		p->head = p->head->next;
	}
	if (p->head == NULL)
		p->tail = NULL;
	p->queued -= n;
	s->busy = n > 0;
	p->busy_threads += s->busy;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* A connection's thread: runs batches until the pool stops. */
static void *
slot_main(void *arg)
{
	struct slot *s = arg;
	struct pool *p = s->pool;
	struct db_job *jobs[BATCH_MAX];
	int			n;

	while ((n = take_batch(p, s, jobs)) > 0)
	{
		run_batch(p, s, jobs, n);
		pthread_mutex_lock(&p->mu);
		s->busy = false;
		p->busy_threads--;
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

/* Queues a job on pool p and wakes a thread if one is waiting; a stopped
 * pool answers 503 at once. */
static void
enqueue(struct pool *p, struct db_job *job)
{
	bool		stopped;

	job->next = NULL;
	job->on_replica = p == &replica;
	job->queued_at = now_ms();
	pthread_mutex_lock(&p->mu);
	stopped = p->stopping;
	if (!stopped)
	{
		bool		was_empty = p->head == NULL;

		if (p->tail)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		p->queued++;
		/* a thread asleep on an empty queue wakes to take the job, or to
		 * wait at most STALL_MS for the running batch (one already waiting
		 * so wakes by itself) */
		if ((was_empty && p->sleepers > 0) || (p->idle_threads > 0 && p->queued >= BATCH_MAX))
			pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->mu);
	if (stopped)
	{
		memset(&job->reply, 0, sizeof job->reply);
		reply_unavailable(&job->reply);
		job->done(job);
	}
}

void
db_submit(struct db_job *job)
{
	enqueue(replica.conninfo != NULL && is_read(job->stmt) ? &replica : &primary, job);
}

/* Opens the pool's connections (so the first requests do not wait) and
 * starts their threads. */
static int
pool_init(struct pool *p, const char *conninfo, int size, bool prepare)
{
	pthread_attr_t attr;
	bool		open = true;

	p->conninfo = strdup(conninfo);
	p->prepare = prepare;
	p->slots = calloc((size_t) size, sizeof *p->slots);
	if (p->conninfo == NULL || p->slots == NULL || pthread_attr_init(&attr) != 0)
		return -1;
	p->size = size;
	pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	for (int i = 0; i < size; i++)
	{
		struct slot *s = &p->slots[i];

		s->pool = p;
		open = open && reconnect(p, s);
		s->started = pthread_create(&s->thread, &attr, slot_main, s) == 0;
		if (!s->started)
			break;
		pthread_setname_np(s->thread, "sdr-db");	/* for top -H, perf and make bench */
	}
	pthread_attr_destroy(&attr);
	return p->slots[size - 1].started ? 0 : -1;
}

int
db_init(const char *conninfo, const char *read_conninfo, int size, bool prepare)
{
	if (pool_init(&primary, conninfo ? conninfo : "", size, prepare) != 0)
		return -1;
	return read_conninfo && *read_conninfo ? pool_init(&replica, read_conninfo, size, prepare) : 0;
}

static void
pool_counts(struct pool *p, int *busy, int *idle, int *broken)
{
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->size; i++)
		if (p->slots[i].busy)
			(*busy)++;
		else if (p->slots[i].conn != NULL)
			(*idle)++;
		else
			(*broken)++;
	pthread_mutex_unlock(&p->mu);
}

void
db_pool_counts(int *busy, int *idle, int *broken)
{
	*busy = *idle = *broken = 0;
	pool_counts(&primary, busy, idle, broken);
	pool_counts(&replica, busy, idle, broken);
}

static void
pool_cancel_busy(struct pool *p)
{
	char		err[256];

	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->size; i++)
		if (p->slots[i].busy && p->slots[i].cancel)
			PQcancel(p->slots[i].cancel, err, sizeof err);
	pthread_mutex_unlock(&p->mu);
}

void
db_cancel_busy(void)
{
	pool_cancel_busy(&primary);
	pool_cancel_busy(&replica);
}

/* Stops the pool's threads once its queue is empty, and closes its connections. */
static void
pool_close(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->size; i++)
		if (p->slots[i].started)
			pthread_join(p->slots[i].thread, NULL);
	for (int i = 0; i < p->size; i++)
		drop_conn(p, &p->slots[i]);
	free(p->slots);
	free(p->conninfo);
	p->slots = NULL;
	p->conninfo = NULL;
	p->size = 0;
}

void
db_close(void)
{
	pool_close(&replica);		/* its fallbacks go to the primary */
	pool_close(&primary);
}
