/*
 * fuzz_db.h: what the harnesses that fuzz the database (body_fuzz, args_fuzz)
 * share: connecting to the database named by SDR_FUZZ_DB (libpq environment
 * otherwise), and running set-up statements that must succeed.
 */
#ifndef SDR_FUZZ_DB_H
#define SDR_FUZZ_DB_H

#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

/* A connection, or abort() with who's name and libpq's message. */
static inline PGconn *
fuzz_db_connect(const char *who)
{
	const char *db = getenv("SDR_FUZZ_DB");
	const char *keys[] = {"dbname", NULL};
	const char *values[] = {db ? db : "sdr_fuzz", NULL};
	PGconn	   *conn = PQconnectdbParams(keys, values, 1);

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s: cannot connect: %s", who, PQerrorMessage(conn));
		abort();
	}
	return conn;
}

/* Runs sql (no parameters); abort() unless it succeeds. */
static inline void
fuzz_db_exec(PGconn *conn, const char *who, const char *sql)
{
	PGresult   *r = PQexec(conn, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "%s: %.60s failed: %s", who, sql, PQerrorMessage(conn));
		abort();
	}
	PQclear(r);
}

#endif
