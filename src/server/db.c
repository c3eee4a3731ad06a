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

#define COL_ORG		0
#define COL_CREATED	1
#define COL_VALUE	2

struct slot
{
	PGconn	   *conn;
	PGcancel   *cancel;			/* changed only under the pool mutex */
	bool		busy;
};

/* A pool of connections to one database: the primary (--db), or the
 * standbys that serve reads (--db-read). */
struct pool
{
	const char *name;			/* for the log: "database", "read database" */
	int			id;				/* index into my_slot */
	pthread_mutex_t mu;			/* guards busy, cancel and the backoff */
	struct slot *slots;
	int			size;
	double		next_connect;	/* no connection attempt before this */
	double		backoff;		/* the next wait after a failure, ms */
	double		connected_at;	/* when the last attempt succeeded */
	bool		healthy;		/* last attempt succeeded (for logging) */
	bool		told_no_client;	/* logged that client addresses are not passed */
	char	   *conninfo;		/* NULL: not configured */
};

static struct pool primary = {
	.name = "database", .id = 0, .mu = PTHREAD_MUTEX_INITIALIZER, .healthy = true,
};
static struct pool replica = {
	.name = "read database", .id = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .healthy = true,
};

/* The slot this thread borrowed last from each pool: each HTTP worker keeps
 * to its own connections. */
static __thread int my_slot[2] = {-1, -1};

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

/* Whether this connection's role may call the three-argument authenticate_headers(). */
static bool
may_pass_client(PGconn *conn)
{
	PGresult   *res = PQexec(conn,
							 "SELECT coalesce(pg_catalog.has_function_privilege(pg_catalog.to_regprocedure("
							 "'sdr_creds.authenticate_headers(text, text, text)'), 'EXECUTE'), false)");
	bool		yes = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		strcmp(PQgetvalue(res, 0, 0), "t") == 0;

	PQclear(res);
	return yes;
}

/* Prepares the statements. Without EXECUTE on the three-argument
 * authenticate_headers() (or on a 1.0 schema), the two-argument one is used:
 * the database then records the server's address as the client's. */
static bool
prepare_all(struct pool *p, PGconn *conn)
{
	bool		client_arg = may_pass_client(conn);

	if (!client_arg && !__atomic_exchange_n(&p->told_no_client, true, __ATOMIC_RELAXED))
		log_msg(LOG_INFO, "%s: client addresses are not passed to the database "
				"(no EXECUTE on sdr_creds.authenticate_headers(text, text, text))", p->name);
	for (int i = -2; i < STMT_COUNT; i++)
	{
		const struct statement *st = i == -2 ? &auth_stmt : i == -1 ? &ready_stmt : &stmts[i];

		if (!prepare(p, conn, st, client_arg))
			return false;
	}
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

/* Borrows a connection: the one this thread used last, else an open one,
 * else any. The HTTP server runs one worker thread per connection and a
 * worker holds one connection at a time, so one is always free; NULL would
 * mean a bug, and is answered 503. */
static struct slot *
acquire(struct pool *p)
{
	struct slot *s = NULL;
	int		   *mine = &my_slot[p->id];

	pthread_mutex_lock(&p->mu);
	if (*mine >= 0 && *mine < p->size && !p->slots[*mine].busy)
		s = &p->slots[*mine];
	for (int i = 0; i < p->size && (s == NULL || s->conn == NULL); i++)
	{
		struct slot *c = &p->slots[i];

		if (!c->busy && (s == NULL || c->conn != NULL))
			s = c;
	}
	if (s != NULL)
	{
		s->busy = true;
		*mine = (int) (s - p->slots);
	}
	pthread_mutex_unlock(&p->mu);
	if (s == NULL)
		log_msg(LOG_ERROR, "no %s connection free", p->name);
	return s;
}

static void
release(struct pool *p, struct slot *s, bool broken)
{
	if (broken)
		drop_conn(p, s);
	pthread_mutex_lock(&p->mu);
	s->busy = false;
	pthread_mutex_unlock(&p->mu);
}

/* Borrows a connection that is open and idle, reconnecting if needed. */
static struct slot *
acquire_open(struct pool *p)
{
	struct slot *s = acquire(p);

	if (s == NULL)
		return NULL;
	if (!conn_usable(s->conn))
	{
		if (s->conn)
			log_msg(LOG_DEBUG, "%s connection %d closed by the server", p->name, (int) (s - p->slots));
		drop_conn(p, s);
		if (!reconnect(p, s))
		{
			release(p, s, false);
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

/* What the standbys may serve: authentication and the reads. */
static bool
is_read(enum stmt_id stmt)
{
	return stmt == STMT_NONE || stmt == STMT_GET_BY_PROVIDER || stmt == STMT_GET ||
		stmt == STMT_LIST;
}

/* Runs the request's statement on a connection of pool p. */
static void
call_on(struct pool *p, enum stmt_id stmt, int nparams, const char *const *params,
		struct db_reply *reply)
{
	struct results r;
	bool		broken = false;
	struct slot *s = acquire_open(p);

	memset(reply, 0, sizeof *reply);
	if (s == NULL)
	{
		unavailable(reply);
		return;
	}
	if (!round_trip(s->conn, stmt, nparams, params, &r))
	{
		log_msg(LOG_ERROR, "%s: %s connection lost",
				stmt == STMT_NONE ? auth_stmt.name : stmts[stmt].name, p->name);
		broken = true;
		unavailable(reply);
	}
	else
		read_results(s->conn, stmt, &r, reply, &broken);
	results_clear(&r, reply->res);
	release(p, s, broken);
}

void
db_call(enum stmt_id stmt, int nparams, const char *const *params,
		const char *api_key, const char *authorization, const char *client,
		struct db_reply *reply)
{
	const char *all[AUTH_PARAMS + DB_MAX_PARAMS] = {api_key, authorization, client};

	if (stmt == STMT_NONE)
		nparams = 0;
	for (int i = 0; i < nparams && i < DB_MAX_PARAMS; i++)
		all[AUTH_PARAMS + i] = params[i];
	/* a read the standbys cannot answer (none reachable, connection lost,
	 * a conflict with recovery) is answered by the primary */
	if (replica.conninfo != NULL && is_read(stmt))
	{
		call_on(&replica, stmt, AUTH_PARAMS + nparams, all, reply);
		if (reply->status != 503)
			return;
		db_reply_free(reply);
		metrics_read_fallback();
	}
	call_on(&primary, stmt, AUTH_PARAMS + nparams, all, reply);
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
	struct slot *s = acquire_open(&primary);
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
	release(&primary, s, !synced || PQstatus(s->conn) != CONNECTION_OK);
	return ok;
}

static int
pool_init(struct pool *p, const char *conninfo, int size)
{
	p->conninfo = strdup(conninfo);
	p->slots = calloc((size_t) size, sizeof *p->slots);
	if (p->conninfo == NULL || p->slots == NULL)
		return -1;
	p->size = size;

	/* open the connections now so the first requests do not wait */
	for (int i = 0; i < size; i++)
		if (!reconnect(p, &p->slots[i]))
			break;
	return 0;
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

static void
pool_close(struct pool *p)
{
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
	pool_close(&primary);
	pool_close(&replica);
}
