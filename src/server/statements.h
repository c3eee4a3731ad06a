/* The statements: what each request runs on a pool connection (one
 * statement per route: the authentication and the route's call), preparing
 * them all on a new connection, and sending one: prepared, or with
 * --no-prepare as the unnamed statement with its text (for PgBouncer's
 * transaction mode before 1.21, where a prepared statement lives on one
 * server connection and the next transaction may run on another). */
#ifndef SDR_SERVER_STATEMENTS_H
#define SDR_SERVER_STATEMENTS_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "db.h"

/* The parameters every statement but STMT_READY's takes first: X-API-Key,
 * Authorization, the client's address; then the route's (db_job.params). */
#define AUTH_PARAMS	3

/* The columns of a statement's rows: the org id (first row), whether store
 * created the row, the call's JSON value (second row). */
#define COL_ORG		0
#define COL_CREATED	1
#define COL_VALUE	2

/* How a connection sends the statements. */
struct stmt_mode
{
	bool		prepared;		/* prepared on the connection (statements_prepare()) */
	bool		client_arg;		/* pass the client's address (see grants.h) */
};

/* The name a statement is prepared under (for PQsendQueryPrepared and the log). */
const char *statement_name(enum stmt_id stmt);

/* Prepares every statement on conn; client_arg: pass the client's address
 * to the three-argument authenticate_headers() (see grants.h). False if one
 * failed (logged at level). */
bool		statements_prepare(PGconn *conn, bool client_arg, int level);

/* Sends stmt with its nparams values (all text) on conn, in pipeline mode:
 * by name if mode->prepared, else its text as the unnamed statement (a
 * Parse with each request; mode->client_arg chooses the text). The caller
 * adds the Sync. False if libpq could not queue it. */
bool		statement_send(PGconn *conn, enum stmt_id stmt, const struct stmt_mode *mode,
						   int nparams, const char *const *values);

#endif
