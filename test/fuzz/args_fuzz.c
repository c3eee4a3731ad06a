/*
 * args_fuzz.c: libFuzzer harness for the arguments of every SQL-callable
 * routine of schema sdr_creds. At start it reads the routines and their
 * argument types from pg_proc (so a function added later is fuzzed too); each
 * input then calls one of them, in a real PostgreSQL with the extension
 * (libpq environment, database named by SDR_FUZZ_DB), inside a transaction
 * that is rolled back.
 *
 * Input layout:
 *   byte 0   which routine (index modulo their number, in signature order)
 *   byte 1   who calls: bits 0-1 the role (0 the superuser, 1 a role with
 *            EXECUTE on every routine, 2 a role with the README's grants,
 *            3 = 0), bit 2 with an org context (authenticated with an API key)
 *   byte 2   bit i set: argument i is NULL
 *   rest     the arguments, separated by NUL bytes (missing ones are ''),
 *            each sent as a text parameter and cast to the argument's type
 *            ($n::text::type); "$cred" and "$other" stand for the id of a
 *            stored credential of the org and of another org.
 *
 * Properties: the backend never dies (the connection stays usable) and the
 * call never fails with a class XX error (internal error, corruption) or a
 * statement timeout (5 s); any other SQLSTATE (22P02 from the casts, PT4xx
 * from the API, 22021 for text that is not valid UTF-8...) is fine. NUL bytes
 * separate the arguments, so no argument holds one (libpq could not send it).
 * ARGS_FUZZ_TRACE=1 prints the routine, caller and SQLSTATE of each input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "fuzz_db.h"

#define MAX_ROUTINES 256
#define MAX_ARGS 8
#define ORG "00000000-0000-4000-8000-0000000000f2"
#define OTHER_ORG "00000000-0000-4000-8000-0000000000f3"

static PGconn *conn;
static int	nroutines;
static struct
{
	char	   *signature;
	char	   *call;			/* SELECT f($1::text::t1, ...) or CALL p(...) */
	int			nargs;
}			routines[MAX_ROUTINES];
static char *api_key;
static char *cred_id;
static char *other_id;

static const char *const roles[] = {NULL, "SET LOCAL ROLE sdr_fuzz_app", "SET LOCAL ROLE sdr_fuzz_readme", NULL};

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static PGresult *
exec_ok(const char *sql, int nparams, const char *const *params)
{
	PGresult   *r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "args_fuzz: %.200s failed: %s", sql, PQerrorMessage(conn));
		abort();
	}
	return r;
}

static char *
exec_value(const char *sql)
{
	PGresult   *r = exec_ok(sql, 0, NULL);
	char	   *v;

	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0))
	{
		fprintf(stderr, "args_fuzz: %.200s returned no value\n", sql);
		abort();
	}
	v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	PGresult   *r;

	(void) argc;
	(void) argv;
	conn = fuzz_db_connect("args_fuzz");
	/* Roles are per cluster: test/fuzz/run.sh drops them at the end. */
	fuzz_db_exec(conn, "args_fuzz",
				"SET client_min_messages = warning;"
				"SET statement_timeout = '5s';"
				"DO $$ BEGIN CREATE ROLE sdr_fuzz_app; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
				"DO $$ BEGIN CREATE ROLE sdr_fuzz_readme; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
				"GRANT USAGE ON SCHEMA sdr_creds TO sdr_fuzz_app, sdr_fuzz_readme;"
				"GRANT EXECUTE ON ALL ROUTINES IN SCHEMA sdr_creds TO sdr_fuzz_app;"
				"GRANT EXECUTE ON FUNCTION sdr_creds.authenticate(text),"
				" sdr_creds.authenticate_headers(text, text), sdr_creds.authenticate_request(),"
				" sdr_creds.current_org_id(), sdr_creds.store(text, text, text, jsonb),"
				" sdr_creds.store_json(text), sdr_creds.get_by_provider(text), sdr_creds.get(uuid),"
				" sdr_creds.list(integer, integer), sdr_creds.delete(uuid) TO sdr_fuzz_readme;"
				"BEGIN; SELECT sdr_creds.act_as('" ORG "');"
				"SELECT sdr_creds.store('salesforce', 'https://x.example', 'made-up-token',"
				" '{\"refresh_token\": \"made-up\"}'); COMMIT;"
				"BEGIN; SELECT sdr_creds.act_as('" OTHER_ORG "');"
				"SELECT sdr_creds.store('hubspot', NULL, 'made-up-token', '{}'); COMMIT;");
	cred_id = exec_value("SELECT id FROM sdr_creds.credentials WHERE org_id = '" ORG "'");
	other_id = exec_value("SELECT id FROM sdr_creds.credentials WHERE org_id = '" OTHER_ORG "'");
	/* held in memory only, never printed */
	api_key = exec_value("SELECT sdr_creds.create_api_key('" ORG "', 'args_fuzz') ->> 'key'");

	r = exec_ok("SELECT p.oid::regprocedure::text, p.pronargs,"
				"       CASE p.prokind WHEN 'p' THEN 'CALL ' ELSE 'SELECT ' END"
				"       || format('%I.%I', n.nspname, p.proname) || '('"
				"       || coalesce((SELECT string_agg(format('$%s::text::%s', k, format_type(t, NULL)), ', ' ORDER BY k)"
				"                      FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, k)), '') || ')'"
				"  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
				" WHERE n.nspname = 'sdr_creds' AND p.prokind IN ('f', 'p')"
				" ORDER BY p.oid::regprocedure::text COLLATE \"C\"", 0, NULL);
	nroutines = PQntuples(r);
	if (nroutines == 0 || nroutines > MAX_ROUTINES)
	{
		fprintf(stderr, "args_fuzz: %d routines in schema sdr_creds\n", nroutines);
		abort();
	}
	for (int i = 0; i < nroutines; i++)
	{
		routines[i].signature = strdup(PQgetvalue(r, i, 0));
		routines[i].nargs = atoi(PQgetvalue(r, i, 1));
		routines[i].call = strdup(PQgetvalue(r, i, 2));
		if (routines[i].nargs > MAX_ARGS)
		{
			fprintf(stderr, "args_fuzz: %s has more than %d arguments\n", routines[i].signature, MAX_ARGS);
			abort();
		}
	}
	PQclear(r);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *params[MAX_ARGS];
	char	   *buf;
	char	   *p;
	char	   *end;
	int			fn;
	int			role;
	int			org;
	PGresult   *r;
	const char *state;

	if (size < 3 || size > 65536)
		return 0;
	fn = data[0] % nroutines;
	role = data[1] & 3;
	org = (data[1] >> 2) & 1;

	/* split the rest at NUL bytes into the arguments */
	buf = malloc(size - 3 + 1);
	memcpy(buf, data + 3, size - 3);
	buf[size - 3] = '\0';
	p = buf;
	end = buf + (size - 3);
	for (int i = 0; i < routines[fn].nargs; i++)
	{
		const char *arg = p <= end ? p : "";

		if (p <= end)
			p += strlen(p) + 1;
		if (strcmp(arg, "$cred") == 0)
			arg = cred_id;
		else if (strcmp(arg, "$other") == 0)
			arg = other_id;
		params[i] = (data[2] >> i) & 1 ? NULL : arg;
	}

	PQclear(exec_ok("BEGIN", 0, NULL));
	if (roles[role])
		PQclear(exec_ok(roles[role], 0, NULL));
	if (org)
		PQclear(exec_ok("SELECT sdr_creds.authenticate($1)", 1, (const char *const *) &api_key));
	r = PQexecParams(conn, routines[fn].call, routines[fn].nargs, NULL, params, NULL, NULL, 0);
	state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (PQstatus(conn) != CONNECTION_OK ||
		(PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK && state == NULL))
	{
		fprintf(stderr, "args_fuzz: the backend died in %s (role %d, org context %d): %s",
				routines[fn].signature, role, org, PQerrorMessage(conn));
		abort();
	}
	if (state && (strncmp(state, "XX", 2) == 0 || strcmp(state, "57014") == 0))
	{
		fprintf(stderr, "args_fuzz: %s (role %d, org context %d) failed with %s: %s",
				routines[fn].signature, role, org, state, PQresultErrorMessage(r));
		abort();
	}
	if (getenv("ARGS_FUZZ_TRACE"))
		fprintf(stderr, "args_fuzz: %s role %d org %d: %s\n", routines[fn].signature, role, org,
				state ? state : "00000");
	PQclear(r);
	PQclear(exec_ok("ROLLBACK", 0, NULL));
	free(buf);
	return 0;
}
