/* The statements, one per route: preparing them on a connection, and
 * sending one (prepared, or unnamed with its text: --no-prepare). */
#include "statements.h"
#include "log.h"

#include <stdio.h>

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
 * authenticate_headers(); "" where that is not available (see grants.h). */
#define AUTH_ROW "SELECT sdr_creds.authenticate_headers($1::text, $2::text%s), NULL::boolean, NULL::json"
#define THEN " UNION ALL "
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

const char *
statement_name(enum stmt_id stmt)
{
	return statement_of(stmt)->name;
}

/* Every parameter is text. */
static const Oid text_types[AUTH_PARAMS + DB_MAX_PARAMS] = {25, 25, 25, 25, 25};

/* The statement's SQL into sql (client_arg: see grants.h). */
static void
statement_sql(const struct statement *st, bool client_arg, char *sql, size_t size)
{
	snprintf(sql, size, st->sql, client_arg ? CLIENT_ARG : "");
}

/* Prepares one statement; false if it failed (logged at level). */
static bool
prepare(PGconn *conn, const struct statement *st, bool client_arg, int level)
{
	char		sql[512];
	char		buf[256];
	PGresult   *res;

	statement_sql(st, client_arg, sql, sizeof sql);
	res = PQprepare(conn, st->name, sql, AUTH_PARAMS + st->nparams, text_types);
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		PQclear(res);
		return true;
	}
	log_msg(level, "preparing %s failed: SQLSTATE %s: %s", st->name,
			PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "-",
			first_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), buf, sizeof buf));
	PQclear(res);
	return false;
}

bool
statements_prepare(PGconn *conn, bool client_arg, int level)
{
	for (int i = STMT_READY; i < STMT_COUNT; i++)
		if (!prepare(conn, statement_of((enum stmt_id) i), client_arg, level))
			return false;
	return true;
}

bool
statement_send(PGconn *conn, enum stmt_id stmt, const struct stmt_mode *mode,
			   int nparams, const char *const *values)
{
	const struct statement *st = statement_of(stmt);
	char		sql[512];

	if (mode->prepared)
		return PQsendQueryPrepared(conn, st->name, nparams, values, NULL, NULL, 0);
	/* the same text and parameter types as prepared, as the unnamed
	 * statement: parsed, bound and run within the statement's own Sync */
	statement_sql(st, mode->client_arg, sql, sizeof sql);
	return PQsendQueryParams(conn, sql, nparams, text_types, values, NULL, NULL, 0);
}
