/*
 * body_fuzz.c: libFuzzer harness for request-body validation, which lives in
 * the database (sdr_creds.store_json). Each input is sent, as the body, to a
 * real PostgreSQL with the extension (libpq environment, database named by
 * SDR_FUZZ_DB), inside a transaction that is rolled back.
 *
 * Properties: the call either succeeds or fails with PT422, or with 22021 for
 * text that is not valid UTF-8 (PostgreSQL's own input check, before ours);
 * never another error, and the backend never dies. Inputs holding a NUL byte
 * are skipped: libpq cannot send them (the server answers them 422 itself,
 * which route_fuzz covers).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "fuzz_db.h"

static PGconn *conn;

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	conn = fuzz_db_connect("body_fuzz");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *body;
	const char *params[1];
	PGresult   *r;
	const char *state;

	if (size > 65536 || memchr(data, 0, size) != NULL)
		return 0;
	body = malloc(size + 1);
	memcpy(body, data, size);
	body[size] = '\0';
	params[0] = body;

	fuzz_db_exec(conn, "body_fuzz", "BEGIN");
	fuzz_db_exec(conn, "body_fuzz", "SELECT sdr_creds.act_as('00000000-0000-4000-8000-0000000000f1')");
	r = PQexecParams(conn, "SELECT created FROM sdr_creds.store_json($1)", 1, NULL, params,
					 NULL, NULL, 0);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "body_fuzz: the backend died\n");
		abort();
	}
	state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (PQresultStatus(r) != PGRES_TUPLES_OK &&
		!(state && (strcmp(state, "PT422") == 0 || strcmp(state, "22021") == 0)))
	{
		fprintf(stderr, "body_fuzz: unexpected SQLSTATE %s\n", state ? state : "(none)");
		abort();
	}
	PQclear(r);
	fuzz_db_exec(conn, "body_fuzz", "ROLLBACK");
	free(body);
	return 0;
}
