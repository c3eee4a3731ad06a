/* The prepared statements: what each request runs on a pool connection
 * (one statement per route: the authentication and the route's call), and
 * preparing them all on a new connection. */
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

/* The name a statement is prepared under (for PQsendQueryPrepared and the log). */
const char *statement_name(enum stmt_id stmt);

/* Prepares every statement on conn; client_arg: pass the client's address
 * to the three-argument authenticate_headers() (see grants.h). False if one
 * failed (logged at level). */
bool		statements_prepare(PGconn *conn, bool client_arg, int level);

#endif
