/* The grants check: which of the functions the statements call a pool
 * connection's role may not execute, each named in the log once. */
#include "grants.h"
#include "log.h"

#include <stdio.h>

/* The functions the statements call; the first is optional (GRANT_CLIENT_ADDRESS). */
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
not_granted(PGconn *conn, const char *pool, int level)
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
		log_msg(level, "%s: checking the role's grants failed: SQLSTATE %s",
				pool, PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "-");
		missing = -1;
	}
	else
		for (int i = 0; i < CALLED_COUNT; i++)
			if (PQgetvalue(res, i, 0)[0] == 't')
				missing |= 1 << i;
	PQclear(res);
	return missing;
}

int
grants_missing(PGconn *conn, const char *pool, int level, int *told)
{
	int			missing = not_granted(conn, pool, level);
	int			untold;

	if (missing < 0)
		return -1;
	untold = missing & ~__atomic_fetch_or(told, missing, __ATOMIC_RELAXED);
	if (untold & GRANT_CLIENT_ADDRESS)
		log_msg(LOG_INFO, "%s: client addresses are not passed to the database "
				"(no EXECUTE on %s)", pool, called[0]);
	for (int i = 1; i < CALLED_COUNT; i++)
		if (untold & (1 << i))
			log_msg(LOG_INFO, "%s: this role may not execute %s: the requests that call it "
					"answer 500 until it is granted", pool, called[i]);
	return missing;
}
