/* The database side of the server: a fixed pool of libpq connections, the
 * prepared statements, one pipelined round trip per request, reconnection
 * with backoff, and the mapping of SQLSTATEs to HTTP statuses.
 *
 * Each request borrows one connection, sends authenticate_headers() and the
 * route's statement in pipeline mode followed by one Sync, so both run in one
 * implicit transaction (the org context lives until it ends), and reads the
 * results back. A connection that fails is closed; the next request that
 * needs it reconnects, no sooner than the pool's backoff allows. */
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


/* Prepared once per connection. Every request runs the auth statement,
 * then (usually) one of the route statements. */
struct statement
{
	const char *name;
	const char *sql;
};

static const struct statement auth_stmt =
{"sdr_auth", "SELECT sdr_creds.authenticate_headers($1::text, $2::text)"};

static const struct statement stmts[STMT_COUNT] = {
	[STMT_GET_BY_PROVIDER] = {"sdr_get_by_provider", "SELECT sdr_creds.get_by_provider($1::text)"},
	[STMT_GET] = {"sdr_get", "SELECT sdr_creds.get($1::uuid)"},
	[STMT_LIST] = {"sdr_list", "SELECT sdr_creds.list($1::integer, $2::integer)"},
	[STMT_DELETE] = {"sdr_delete", "SELECT sdr_creds.delete($1::uuid)"},
	[STMT_STORE] = {"sdr_store", "SELECT created, credential FROM sdr_creds.store_json($1::text)"},
};

struct slot
{
	PGconn	   *conn;
	PGcancel   *cancel;			/* changed only under the pool mutex */
	bool		busy;
};

/* The slot this thread borrowed last: each HTTP worker keeps to its own
 * connection. */
static __thread int my_slot = -1;

static struct
{
	pthread_mutex_t mu;			/* guards busy, cancel and the backoff */
	struct slot *slots;
	int			size;
	double		next_connect;	/* no connection attempt before this */
	double		backoff;		/* the next wait after a failure, ms */
	double		connected_at;	/* when the last attempt succeeded */
	bool		healthy;		/* last attempt succeeded (for logging) */
	char	   *conninfo;
}			pool = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
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

/* Opens one connection, prepares the statements and enters pipeline mode. */
static PGconn *
connect_one(void)
{
	/* Defaults first: the user's conninfo (dbname, expanded) overrides them;
	 * client_encoding comes last because request text is sent as UTF-8. */
	static const char *const keys[] = {
		"connect_timeout", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "fallback_application_name", "dbname",
		"client_encoding", NULL
	};
	const char *vals[] = {
		"5", "30", "10", "3", "sdr_creds_server", pool.conninfo, "UTF8", NULL
	};
	char		buf[256];
	PGconn	   *conn = PQconnectdbParams(keys, vals, 1);

	if (conn == NULL)
		return NULL;
	if (PQstatus(conn) != CONNECTION_OK)
	{
		log_msg(pool.healthy ? LOG_ERROR : LOG_DEBUG, "database connection failed: %s",
				first_line(PQerrorMessage(conn), buf, sizeof buf));
		PQfinish(conn);
		return NULL;
	}
	for (int i = -1; i < STMT_COUNT; i++)
	{
		const struct statement *st = i < 0 ? &auth_stmt : &stmts[i];
		PGresult   *res = PQprepare(conn, st->name, st->sql, 0, NULL);
		bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

		if (!ok)
			log_msg(pool.healthy ? LOG_ERROR : LOG_DEBUG, "preparing %s failed: SQLSTATE %s: %s", st->name,
					PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "-",
					first_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), buf, sizeof buf));
		PQclear(res);
		if (!ok)
		{
			PQfinish(conn);
			return NULL;
		}
	}
	if (!PQenterPipelineMode(conn))
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
drop_conn(struct slot *s)
{
	PGconn	   *conn = s->conn;

	pthread_mutex_lock(&pool.mu);
	if (s->cancel)
		PQfreeCancel(s->cancel);
	s->cancel = NULL;
	s->conn = NULL;
	pthread_mutex_unlock(&pool.mu);
	if (conn)
		PQfinish(conn);
}

/* After a failed attempt: 100 ms, 200 ms, ... up to 2 s between attempts.
 * Called under the pool mutex. */
static void
back_off(double t)
{
	if (t >= pool.next_connect)
	{
		pool.backoff = pool.backoff < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : pool.backoff * 2;
		if (pool.backoff > BACKOFF_MAX_MS)
			pool.backoff = BACKOFF_MAX_MS;
		pool.next_connect = t + pool.backoff;
	}
	if (pool.healthy)
		log_msg(LOG_ERROR, "database unavailable; retrying with backoff up to %d ms",
				BACKOFF_MAX_MS);
	pool.healthy = false;
}

/* Reconnects a slot unless the pool is backing off; false if no connection. */
static bool
reconnect(struct slot *s)
{
	PGconn	   *conn;
	double		t,
				started;

	pthread_mutex_lock(&pool.mu);
	started = t = now_ms();
	if (t < pool.next_connect)
	{
		pthread_mutex_unlock(&pool.mu);
		return false;
	}
	pthread_mutex_unlock(&pool.mu);

	conn = connect_one();

	pthread_mutex_lock(&pool.mu);
	t = now_ms();
	/* an attempt that started before another one succeeded says nothing
	 * about the database now */
	if (conn == NULL && pool.connected_at < started)
		back_off(t);
	else if (conn != NULL)
	{
		if (!pool.healthy)
			log_msg(LOG_INFO, "database connection restored");
		pool.healthy = true;
		pool.backoff = 0;
		pool.next_connect = 0;
		pool.connected_at = t;
		s->conn = conn;
		s->cancel = PQgetCancel(conn);
		log_msg(LOG_DEBUG, "database connection %d opened", (int) (s - pool.slots));
	}
	pthread_mutex_unlock(&pool.mu);
	return conn != NULL;
}

/* Borrows a connection: the one this thread used last, else an open one,
 * else any. The HTTP server runs one worker thread per connection and a
 * worker holds one connection at a time, so one is always free; NULL would
 * mean a bug, and is answered 503. */
static struct slot *
acquire(void)
{
	struct slot *s = NULL;

	pthread_mutex_lock(&pool.mu);
	if (my_slot >= 0 && my_slot < pool.size && !pool.slots[my_slot].busy)
		s = &pool.slots[my_slot];
	for (int i = 0; i < pool.size && (s == NULL || s->conn == NULL); i++)
	{
		struct slot *c = &pool.slots[i];

		if (!c->busy && (s == NULL || c->conn != NULL))
			s = c;
	}
	if (s != NULL)
	{
		s->busy = true;
		my_slot = (int) (s - pool.slots);
	}
	pthread_mutex_unlock(&pool.mu);
	if (s == NULL)
		log_msg(LOG_ERROR, "no database connection free");
	return s;
}

static void
release(struct slot *s, bool broken)
{
	if (broken)
		drop_conn(s);
	pthread_mutex_lock(&pool.mu);
	s->busy = false;
	pthread_mutex_unlock(&pool.mu);
}

/* Borrows a connection that is open and idle, reconnecting if needed. */
static struct slot *
acquire_open(void)
{
	struct slot *s = acquire();

	if (s == NULL)
		return NULL;
	if (!conn_usable(s->conn))
	{
		if (s->conn)
			log_msg(LOG_DEBUG, "database connection %d closed by the server", (int) (s - pool.slots));
		drop_conn(s);
		if (!reconnect(s))
		{
			release(s, false);
			return NULL;
		}
		metrics_reconnect();
	}
	return s;
}

/* Reads the results of nq pipelined queries and the Sync that follows them;
 * res[i] gets the first result of query i. False if the pipeline did not end
 * cleanly (the connection must then be dropped). */
static bool
collect(PGconn *conn, int nq, PGresult **res)
{
	int			q = 0;

	for (;;)
	{
		PGresult   *r = PQgetResult(conn);

		if (r == NULL)
		{
			if (q >= nq || PQstatus(conn) == CONNECTION_BAD)
				return false;
			q++;
			continue;
		}
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC)
		{
			PQclear(r);
			return q == nq;
		}
		if (q < nq && res[q] == NULL)
			res[q] = r;
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

/* A statement's result as the reply: its JSON value (store: 201 when it created the row). */
static void
reply_with_value(enum stmt_id stmt, PGresult *res, struct db_reply *reply)
{
	int			col = stmt == STMT_STORE ? 1 : 0;

	if (PQntuples(res) != 1 || PQnfields(res) <= col || PQgetisnull(res, 0, col))
	{
		log_msg(LOG_ERROR, "%s returned no value", stmts[stmt].name);
		internal_error(reply);
		return;
	}
	reply->status = stmt == STMT_STORE && PQgetvalue(res, 0, 0)[0] == 't' ? 201 : 200;
	reply->body = PQgetvalue(res, 0, col);
	reply->body_len = (size_t) PQgetlength(res, 0, col);
	reply->res = res;
}

/* Sends the authentication and stmt (unless STMT_NONE) with one Sync and
 * reads their results; false if the connection failed. Timed for /metrics. */
static bool
round_trip(PGconn *conn, enum stmt_id stmt, int nparams, const char *const *params,
		   const char *const *auth, PGresult **res)
{
	double		sent = now_ms();
	bool		ok;

	ok = PQsendQueryPrepared(conn, auth_stmt.name, 2, auth, NULL, NULL, 0) &&
		(stmt == STMT_NONE ||
		 PQsendQueryPrepared(conn, stmts[stmt].name, nparams, params, NULL, NULL, 0)) &&
		PQpipelineSync(conn) &&
		collect(conn, stmt == STMT_NONE ? 1 : 2, res);
	if (ok)
		metrics_db_roundtrip(now_ms() - sent);
	return ok;
}

void
db_call(enum stmt_id stmt, int nparams, const char *const *params,
		const char *api_key, const char *authorization, struct db_reply *reply)
{
	const char *auth[2] = {api_key, authorization};
	PGresult   *res[2] = {NULL, NULL};
	bool		broken = false;
	struct slot *s;
	PGconn	   *conn;

	memset(reply, 0, sizeof *reply);
	s = acquire_open();
	if (s == NULL)
	{
		unavailable(reply);
		return;
	}
	conn = s->conn;
	if (!round_trip(conn, stmt, nparams, params, auth, res))
	{
		log_msg(LOG_ERROR, "%s: database connection lost",
				stmt == STMT_NONE ? auth_stmt.name : stmts[stmt].name);
		broken = true;
		unavailable(reply);
	}
	else if (PQresultStatus(res[0]) != PGRES_TUPLES_OK)
		map_error(conn, res[0], auth_stmt.name, reply, &broken);
	else
	{
		if (PQntuples(res[0]) == 1 && !PQgetisnull(res[0], 0, 0))
			snprintf(reply->org_id, sizeof reply->org_id, "%s", PQgetvalue(res[0], 0, 0));
		if (stmt == STMT_NONE)
			reply->status = 0;
		else if (PQresultStatus(res[1]) != PGRES_TUPLES_OK)
			map_error(conn, res[1], stmts[stmt].name, reply, &broken);
		else
			reply_with_value(stmt, res[1], reply);
	}
	for (int i = 0; i < 2; i++)
		if (res[i] != reply->res)
			PQclear(res[i]);
	release(s, broken);
}

void
db_reply_free(struct db_reply *reply)
{
	PQclear(reply->res);
	reply->res = NULL;
}

bool
db_ready(void)
{
	struct slot *s = acquire_open();
	PGresult   *res = NULL;
	bool		synced,
				ok;

	if (s == NULL)
		return false;
	synced = PQsendQueryParams(s->conn, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0) &&
		PQpipelineSync(s->conn) &&
		collect(s->conn, 1, &res);
	ok = synced && PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		log_msg(LOG_ERROR, "readiness check failed: SQLSTATE %s",
				res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "none" : "none");
	PQclear(res);
	release(s, !synced || PQstatus(s->conn) != CONNECTION_OK);
	return ok;
}

int
db_init(const char *conninfo, int size)
{
	pool.conninfo = strdup(conninfo ? conninfo : "");
	pool.slots = calloc((size_t) size, sizeof *pool.slots);
	if (pool.conninfo == NULL || pool.slots == NULL)
		return -1;
	pool.size = size;

	/* open the connections now so the first requests do not wait */
	for (int i = 0; i < size; i++)
		if (!reconnect(&pool.slots[i]))
			break;
	return 0;
}

void
db_pool_counts(int *busy, int *idle, int *broken)
{
	*busy = *idle = *broken = 0;
	pthread_mutex_lock(&pool.mu);
	for (int i = 0; i < pool.size; i++)
		if (pool.slots[i].busy)
			(*busy)++;
		else if (pool.slots[i].conn != NULL)
			(*idle)++;
		else
			(*broken)++;
	pthread_mutex_unlock(&pool.mu);
}

void
db_cancel_busy(void)
{
	char		err[256];

	pthread_mutex_lock(&pool.mu);
	for (int i = 0; i < pool.size; i++)
		if (pool.slots[i].busy && pool.slots[i].cancel)
			PQcancel(pool.slots[i].cancel, err, sizeof err);
	pthread_mutex_unlock(&pool.mu);
}

void
db_close(void)
{
	for (int i = 0; i < pool.size; i++)
		drop_conn(&pool.slots[i]);
	free(pool.slots);
	free(pool.conninfo);
	pool.slots = NULL;
	pool.conninfo = NULL;
	pool.size = 0;
}
