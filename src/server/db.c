/* The database side of the server: a fixed pool of libpq connections, the
 * prepared statements, one pipelined round trip per request, reconnection
 * with backoff, and the mapping of SQLSTATEs to HTTP statuses.
 *
 * Each request borrows one connection and sends one statement that
 * authenticates (authenticate_headers()) and makes the route's call, with a
 * Sync, so both run in one implicit transaction (the org context lives until
 * it ends), and reads the results back. A connection that fails is closed; the next request that
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
	const char *sql;
};

#define AUTH_ROW "SELECT sdr_creds.authenticate_headers($1::text, $2::text), NULL::boolean, NULL::json"
#define THEN " UNION ALL "

static const struct statement auth_stmt = {"sdr_auth", AUTH_ROW};
static const struct statement ready_stmt = {"sdr_ready", "SELECT 1"};

static const struct statement stmts[STMT_COUNT] = {
	[STMT_GET_BY_PROVIDER] = {"sdr_get_by_provider",
	AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.get_by_provider($3::text)"},
	[STMT_GET] = {"sdr_get", AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.get($3::uuid)"},
	[STMT_LIST] = {"sdr_list",
	AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.list($3::integer, $4::integer)"},
	[STMT_DELETE] = {"sdr_delete", AUTH_ROW THEN "SELECT NULL, NULL, sdr_creds.delete($3::uuid)"},
	[STMT_STORE] = {"sdr_store",
	AUTH_ROW THEN "SELECT NULL, created, credential FROM sdr_creds.store_json($3::text)"},
};

#define COL_ORG		0
#define COL_CREATED	1
#define COL_VALUE	2

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
	for (int i = -2; i < STMT_COUNT; i++)
	{
		const struct statement *st = i == -2 ? &ready_stmt : i == -1 ? &auth_stmt : &stmts[i];
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

/* Sends one prepared statement and a Sync, and reads its rows (one result
 * each) and error up to the Sync. False if the pipeline did not end cleanly
 * (the connection must then be dropped). */
static bool
run_one(PGconn *conn, const char *name, int nparams, const char *const *params,
		struct results *out)
{
	bool		ended = false;

	memset(out, 0, sizeof *out);
	if (!PQsendQueryPrepared(conn, name, nparams, params, NULL, NULL, 0) ||
		!PQpipelineSync(conn) || !PQsetSingleRowMode(conn))
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

/* Runs the request's statement; false if the connection failed. Timed for /metrics. */
static bool
round_trip(PGconn *conn, enum stmt_id stmt, int nparams, const char *const *params,
		   struct results *out)
{
	double		sent = now_ms();
	bool		ok;

	ok = run_one(conn, stmt == STMT_NONE ? auth_stmt.name : stmts[stmt].name,
				 nparams, params, out);
	if (ok)
		metrics_db_roundtrip(now_ms() - sent);
	return ok;
}

/* The statement's results as the reply: the org id from its first row, then
 * its error, the call's value, or (STMT_NONE) status 0. */
static void
read_results(PGconn *conn, enum stmt_id stmt, struct results *r,
			 struct db_reply *reply, bool *broken)
{
	const char *name = stmt == STMT_NONE ? auth_stmt.name : stmts[stmt].name;

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

void
db_call(enum stmt_id stmt, int nparams, const char *const *params,
		const char *api_key, const char *authorization, struct db_reply *reply)
{
	const char *all[2 + DB_MAX_PARAMS] = {api_key, authorization};
	struct results r;
	bool		broken = false;
	struct slot *s;

	memset(reply, 0, sizeof *reply);
	s = acquire_open();
	if (s == NULL)
	{
		unavailable(reply);
		return;
	}
	for (int i = 0; i < nparams && i < DB_MAX_PARAMS && stmt != STMT_NONE; i++)
		all[2 + i] = params[i];
	if (!round_trip(s->conn, stmt, stmt == STMT_NONE ? 2 : 2 + nparams, all, &r))
	{
		log_msg(LOG_ERROR, "%s: database connection lost",
				stmt == STMT_NONE ? auth_stmt.name : stmts[stmt].name);
		broken = true;
		unavailable(reply);
	}
	else
		read_results(s->conn, stmt, &r, reply, &broken);
	results_clear(&r, reply->res);
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
	struct results r;
	bool		synced,
				ok;

	if (s == NULL)
		return false;
	synced = run_one(s->conn, ready_stmt.name, 0, NULL, &r);
	ok = synced && r.error == NULL && r.nrows == 1;
	if (!ok)
		log_msg(LOG_ERROR, "readiness check failed: SQLSTATE %s",
				r.error ? PQresultErrorField(r.error, PG_DIAG_SQLSTATE) ?: "none" : "none");
	results_clear(&r, NULL);
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
