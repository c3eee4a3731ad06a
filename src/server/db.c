/* The database side of the server: a fixed pool of libpq connections, the
 * prepared statements, the pipelines of queued requests, reconnection with
 * backoff, and the mapping of SQLSTATEs to HTTP statuses.
 *
 * Each request is a job: one statement that authenticates
 * (authenticate_headers()) and makes the route's call, with a Sync, so both
 * run in one implicit transaction (the org context lives until it ends) and
 * no two requests share one. The HTTP workers queue jobs and go on; each
 * connection has a thread that takes every job waiting (up to BATCH_MAX),
 * sends them all in one pipeline, reads their results in order and hands
 * each back. Under load a round trip thus serves many requests: the
 * database wakes once per batch, not once per request. A connection that
 * fails is closed; its thread reconnects for the next batch, no sooner than
 * the pool's backoff allows. */
#include "db.h"
#include "../messages.h"
#include "log.h"
#include "metrics.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		2000
#define BATCH_MAX			32		/* jobs sent in one pipeline */
#define STALL_MS			5		/* a job waits no longer for a running batch */
#define THREAD_STACK_SIZE	(256 * 1024)


/* Prepared once per connection. Each request runs one of them: the
 * authentication alone (STMT_NONE), or the authentication and the route's
 * call in one statement, whose first branch authenticates (setting the
 * transaction's org context) and returns the org id as its first row, and
 * whose second branch makes the call and returns its value as the second
 * row. Read in single-row mode, the first row arrives even when the call
 * fails, so the access log names the org of a 403 or 404. Columns: org id,
 * created (store), value. */
struct statement
{
	const char *name;
	const char *sql;			/* a format: AUTH_ROW's %s */
	int			nparams;		/* the route's parameters, after AUTH_PARAMS */
};

/* %s: ", $3::text" passes the HTTP client's address to the three-argument
 * authenticate_headers(); "" where that is not available (see connect_one). */
#define AUTH_ROW "SELECT sdr_creds.authenticate_headers($1::text, $2::text%s), NULL::boolean, NULL::json"
#define THEN " UNION ALL "
#define AUTH_PARAMS	3			/* X-API-Key, Authorization, client address */
#define CLIENT_ARG	", $3::text"

static const struct statement auth_stmt = {"sdr_auth", AUTH_ROW, 0};
static const struct statement ready_stmt = {"sdr_ready", "SELECT 1", -AUTH_PARAMS};

static const struct statement stmts[STMT_COUNT] = {
	[STMT_GET_BY_PROVIDER] = {"sdr_get_by_provider",
	AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.get_by_provider($4::text)", 1},
	[STMT_GET] = {"sdr_get", AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.get($4::uuid)", 1},
	[STMT_LIST] = {"sdr_list",
	AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.list($4::integer, $5::integer)", 2},
	[STMT_DELETE] = {"sdr_delete", AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.delete($4::uuid)", 1},
	[STMT_STORE] = {"sdr_store",
	AUTH_ROW THEN "SELECT NULL, created, credential FROM sdr_creds.store_json($4::text)", 1},
	[STMT_REQUEST_REFRESH] = {"sdr_request_refresh",
	AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.request_refresh($4::uuid)", 1},
	/* the object after a refresh: from the primary, which a standby may lag */
	[STMT_GET_REFRESHED] = {"sdr_get_refreshed", AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.get($4::uuid)", 1},
};

/* The statement a job runs. */
static const struct statement *
statement_of(enum stmt_id stmt)
{
	return stmt == STMT_READY ? &ready_stmt : stmt == STMT_NONE ? &auth_stmt : &stmts[stmt];
}

#define COL_ORG		0
#define COL_CREATED	1
#define COL_VALUE	2

struct pool;

/* A connection and the thread that runs its batches. */
struct slot
{
	PGconn	   *conn;
	PGcancel   *cancel;			/* changed only under the pool mutex */
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
	int			told_missing;	/* not_granted() bits already logged */
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

/* First line of a libpq error message, for the log. */
static const char *
first_line(const char *msg, char *buf, size_t size)
{
	size_t		n = strcspn(msg ? msg : "", "\n");

	if (n >= size)
		n = size - 1;
	memcpy(buf, msg ? msg : "", n);
	buf[n] = '\0';
	return buf;
}

/* Prepares one statement, its parameters all text; false if it failed (logged). */
static bool
prepare(struct pool *p, PGconn *conn, const struct statement *st, bool client_arg)
{
	static const Oid text_types[AUTH_PARAMS + DB_MAX_PARAMS] = {25, 25, 25, 25, 25};
	char		sql[512];
	char		buf[256];
	PGresult   *res;

	snprintf(sql, sizeof sql, st->sql, client_arg ? CLIENT_ARG : "");
	res = PQprepare(conn, st->name, sql, AUTH_PARAMS + st->nparams, text_types);
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		PQclear(res);
		return true;
	}
	log_msg(p->healthy ? LOG_ERROR : LOG_DEBUG, "preparing %s failed: SQLSTATE %s: %s", st->name,
			PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "-",
			first_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), buf, sizeof buf));
	PQclear(res);
	return false;
}

/* The functions the statements call; the first is optional (see prepare_all). */
static const char *const called[] = {
	"sdr_creds.authenticate_headers(text, text, text)",
	"sdr_creds.authenticate_headers(text, text)",
	"sdr_creds.get_by_provider(text)",
	"sdr_creds.get(uuid)",
	"sdr_creds.list(integer, integer)",
	"sdr_creds.delete(uuid)",
	"sdr_creds.store_json(text)",
	"sdr_creds.request_refresh(uuid)",
};

#define CALLED_COUNT ((int) (sizeof called / sizeof called[0]))

/* Which of called[] this connection's role may not execute, as a bit set
 * (bit i: called[i]); -1 if the check itself failed. */
static int
not_granted(struct pool *p, PGconn *conn)
{
	char		sql[1024];
	int			len;
	int			missing = 0;
	PGresult   *res;

	len = snprintf(sql, sizeof sql, "SELECT NOT coalesce(pg_catalog.has_function_privilege("
				   "pg_catalog.to_regprocedure(f), 'EXECUTE'), false) FROM unnest(ARRAY[");
	for (int i = 0; i < CALLED_COUNT; i++)
		len += snprintf(sql + len, sizeof sql - len, "%s'%s'", i ? ", " : "", called[i]);
	snprintf(sql + len, sizeof sql - len, "]) WITH ORDINALITY AS c(f, i) ORDER BY i");
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != CALLED_COUNT)
	{
		log_msg(p->healthy ? LOG_ERROR : LOG_DEBUG, "%s: checking the role's grants failed: SQLSTATE %s",
				p->name, PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "-");
		missing = -1;
	}
	else
		for (int i = 0; i < CALLED_COUNT; i++)
			if (PQgetvalue(res, i, 0)[0] == 't')
				missing |= 1 << i;
	PQclear(res);
	return missing;
}

/* Prepares the statements. Without EXECUTE on the three-argument
 * authenticate_headers() (or on a 1.0 schema), the two-argument one is used:
 * the database then records the server's address as the client's. A
 * function the role may not execute is named in the log once: the
 * requests that call it answer 500 until it is granted. */
static bool
prepare_all(struct pool *p, PGconn *conn)
{
	int			missing = not_granted(p, conn);
	int			untold;
	bool		client_arg;

	if (missing < 0)
		return false;
	client_arg = !(missing & 1);
	untold = missing & ~__atomic_fetch_or(&p->told_missing, missing, __ATOMIC_RELAXED);
	if (untold & 1)
		log_msg(LOG_INFO, "%s: client addresses are not passed to the database "
				"(no EXECUTE on %s)", p->name, called[0]);
	for (int i = 1; i < CALLED_COUNT; i++)
		if (untold & (1 << i))
			log_msg(LOG_INFO, "%s: this role may not execute %s: the requests that call it "
					"answer 500 until it is granted", p->name, called[i]);
	for (int i = STMT_READY; i < STMT_COUNT; i++)
		if (!prepare(p, conn, statement_of((enum stmt_id) i), client_arg))
			return false;
	return true;
}

/* Opens one connection, prepares the statements and enters pipeline mode. */
static PGconn *
connect_one(struct pool *p)
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
		log_msg(p->healthy ? LOG_ERROR : LOG_DEBUG, "%s connection failed: %s", p->name,
				first_line(PQerrorMessage(conn), buf, sizeof buf));
		PQfinish(conn);
		return NULL;
	}
	if (!prepare_all(p, conn) || !PQenterPipelineMode(conn))
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

	conn = connect_one(p);

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

/* What one statement sent back, up to its Sync. */
struct results
{
	PGresult   *row[2];			/* its first rows, in single-row mode */
	int			nrows;
	PGresult   *error;			/* its error, if it failed */
};

static void
results_clear(struct results *r, const PGresult *keep)
{
	for (int i = 0; i < r->nrows; i++)
		if (r->row[i] != keep)
			PQclear(r->row[i]);
	if (r->error != keep)
		PQclear(r->error);
}

/* Sends a job's statement and a Sync (into the pipeline); false if it failed. */
static bool
send_one(PGconn *conn, const struct db_job *job)
{
	const char *all[AUTH_PARAMS + DB_MAX_PARAMS] = {job->api_key, job->authorization, job->client};
	int			nparams = job->stmt == STMT_READY ? 0 : AUTH_PARAMS;

	for (int i = 0; job->stmt >= 0 && i < job->nparams && i < DB_MAX_PARAMS; i++)
		all[nparams++] = job->params[i];
	return PQsendQueryPrepared(conn, statement_of(job->stmt)->name, nparams, all, NULL, NULL, 0) &&
		PQpipelineSync(conn);
}

/* Reads the next statement's rows (one result each, in single-row mode) and
 * error, up to its Sync. False if the pipeline did not end cleanly (the
 * connection must then be dropped). */
static bool
read_one(PGconn *conn, struct results *out)
{
	bool		ended = false;

	memset(out, 0, sizeof *out);
	if (!PQsetSingleRowMode(conn))
		return false;
	for (;;)
	{
		PGresult   *r = PQgetResult(conn);

		if (r == NULL)
		{
			/* the end of the statement's results, then the Sync's */
			if (ended || PQstatus(conn) == CONNECTION_BAD)
				return false;
			ended = true;
			continue;
		}
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC)
		{
			PQclear(r);
			return ended;
		}
		if (PQresultStatus(r) == PGRES_SINGLE_TUPLE && out->nrows < 2)
			out->row[out->nrows++] = r;
		else if (PQresultStatus(r) != PGRES_SINGLE_TUPLE &&
				 PQresultStatus(r) != PGRES_TUPLES_OK && out->error == NULL)
			out->error = r;
		else
			PQclear(r);
	}
}

static void
unavailable(struct db_reply *reply)
{
	reply->status = 503;
	reply->retry = true;
	reply->detail = MSG_UNAVAILABLE;
}

static void
internal_error(struct db_reply *reply)
{
	reply->status = 500;
	reply->detail = MSG_INTERNAL;
}

static bool
connection_sqlstate(const char *state)
{
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
		strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* Failures a retry can cure: a cancelled statement (statement_timeout, or a
 * stop that could not wait), a serialization failure, a deadlock. */
static bool
transient_sqlstate(const char *state)
{
	return strcmp(state, "57014") == 0 || strcmp(state, "40001") == 0 ||
		strcmp(state, "40P01") == 0;
}

/* Turns an error result into the reply; sets *broken for connection loss. */
static void
map_error(PGconn *conn, PGresult *res, const char *what, struct db_reply *reply, bool *broken)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state == NULL || connection_sqlstate(state))
	{
		/* no SQLSTATE: libpq's own error, such as a lost connection */
		if (state != NULL || PQstatus(conn) == CONNECTION_BAD)
		{
			log_msg(LOG_ERROR, "%s: database connection lost (SQLSTATE %s)", what, state ?: "none");
			*broken = true;
			unavailable(reply);
			return;
		}
		log_msg(LOG_ERROR, "%s failed: client-side error", what);
	}
	else if (transient_sqlstate(state))
	{
		log_msg(LOG_ERROR, "%s failed: SQLSTATE %s; answered 503, retry", what, state);
		unavailable(reply);
		return;
	}
	else if (state[0] == 'P' && state[1] == 'T' &&
			 state[2] >= '4' && state[2] <= '5' &&
			 state[3] >= '0' && state[3] <= '9' &&
			 state[4] >= '0' && state[4] <= '9' && state[5] == '\0')
	{
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		reply->status = atoi(state + 2);
		reply->retry = reply->status == 503;
		reply->detail = msg ? msg : "";
		reply->res = res;
		return;
	}
	else
		log_msg(LOG_ERROR, "%s failed: SQLSTATE %s", what, state);
	internal_error(reply);
}

/* The call's row as the reply: its JSON value (store: 201 when it created the row). */
static void
reply_with_value(enum stmt_id stmt, PGresult *res, struct db_reply *reply)
{
	if (res == NULL || PQnfields(res) <= COL_VALUE || PQgetisnull(res, 0, COL_VALUE))
	{
		log_msg(LOG_ERROR, "%s returned no value", stmts[stmt].name);
		internal_error(reply);
		return;
	}
	reply->status = stmt == STMT_STORE && PQgetvalue(res, 0, COL_CREATED)[0] == 't' ? 201 : 200;
	reply->body = PQgetvalue(res, 0, COL_VALUE);
	reply->body_len = (size_t) PQgetlength(res, 0, COL_VALUE);
	reply->res = res;
}

/* The statement's results as the reply: the org id from its first row, then
 * its error, the call's value, (STMT_NONE) status 0 or (STMT_READY) 200. */
static void
read_results(PGconn *conn, enum stmt_id stmt, struct results *r,
			 struct db_reply *reply, bool *broken)
{
	const char *name = statement_of(stmt)->name;

	if (stmt == STMT_READY)
	{
		if (r->error == NULL && r->nrows == 1)
		{
			reply->status = 200;
			return;
		}
		log_msg(LOG_ERROR, "readiness check failed: SQLSTATE %s",
				r->error ? PQresultErrorField(r->error, PG_DIAG_SQLSTATE) ?: "none" : "none");
		unavailable(reply);
		return;
	}
	if (r->nrows > 0 && !PQgetisnull(r->row[0], 0, COL_ORG))
		snprintf(reply->org_id, sizeof reply->org_id, "%s", PQgetvalue(r->row[0], 0, COL_ORG));
	if (r->error != NULL)
		map_error(conn, r->error, name, reply, broken);
	else if (r->nrows == 0)
	{
		log_msg(LOG_ERROR, "%s returned no rows", name);
		internal_error(reply);
	}
	else if (stmt == STMT_NONE)
		reply->status = 0;
	else
		reply_with_value(stmt, r->nrows > 1 ? r->row[1] : NULL, reply);
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

	for (int i = 0; !broken && i < n; i++)
		broken = !send_one(s->conn, jobs[i]);
	if (!broken)
		metrics_db_pipeline();
	for (int i = 0; i < n; i++)
	{
		struct db_job *job = jobs[i];
		struct results r = {0};

		memset(&job->reply, 0, sizeof job->reply);
		if (!broken && !read_one(s->conn, &r))
		{
			log_msg(LOG_ERROR, "%s: %s connection lost", statement_of(job->stmt)->name, p->name);
			broken = true;
		}
		if (broken)
			unavailable(&job->reply);
		else
		{
			metrics_db_roundtrip(now_ms() - t);
			read_results(s->conn, job->stmt, &r, &job->reply, &broken);
		}
		results_clear(&r, job->reply.res);
		complete(job);
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
		unavailable(&job->reply);
		job->done(job);
	}
}

void
db_submit(struct db_job *job)
{
	enqueue(replica.conninfo != NULL && is_read(job->stmt) ? &replica : &primary, job);
}

void
db_reply_free(struct db_reply *reply)
{
	PQclear(reply->res);
	reply->res = NULL;
}

/* Opens the pool's connections (so the first requests do not wait) and
 * starts their threads. */
static int
pool_init(struct pool *p, const char *conninfo, int size)
{
	pthread_attr_t attr;
	bool		open = true;

	p->conninfo = strdup(conninfo);
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
	}
	pthread_attr_destroy(&attr);
	return p->slots[size - 1].started ? 0 : -1;
}

int
db_init(const char *conninfo, const char *read_conninfo, int size)
{
	if (pool_init(&primary, conninfo ? conninfo : "", size) != 0)
		return -1;
	return read_conninfo && *read_conninfo ? pool_init(&replica, read_conninfo, size) : 0;
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
