/* One batch of jobs on one connection: their statements sent in one
 * pipeline, their results read in order, in single-row mode, so that the
 * first row (the org id) arrives even when the call fails. */
#include "pipeline.h"
#include "statements.h"
#include "reply.h"
#include "log.h"
#include "metrics.h"

#include <string.h>

/* Frees the results but keep (the one the reply points into). */
static void
results_clear(struct results *r, const PGresult *keep)
{
	for (int i = 0; i < r->nrows; i++)
		if (r->row[i] != keep)
			PQclear(r->row[i]);
	if (r->error != keep)
		PQclear(r->error);
}

/* Sends a job's statement and a Sync (into the pipeline); false if it failed. */
static bool
send_one(PGconn *conn, const struct stmt_mode *mode, const struct db_job *job)
{
	const char *all[AUTH_PARAMS + DB_MAX_PARAMS] = {job->api_key, job->authorization, job->client};
	int			nparams = job->stmt == STMT_READY ? 0 : AUTH_PARAMS;

	for (int i = 0; job->stmt >= 0 && i < job->nparams && i < DB_MAX_PARAMS; i++)
		all[nparams++] = job->params[i];
	return statement_send(conn, job->stmt, mode, nparams, all) && PQpipelineSync(conn);
}

/* Reads the next statement's rows (one result each, in single-row mode) and
 * error, up to its Sync. False if the pipeline did not end cleanly (the
 * connection must then be dropped). */
static bool
read_one(PGconn *conn, struct results *out)
{
	bool		ended = false;

	memset(out, 0, sizeof *out);
	if (!PQsetSingleRowMode(conn))
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

bool
pipeline_send(PGconn *conn, const struct stmt_mode *mode, struct db_job **jobs, int n)
{
	for (int i = 0; i < n; i++)
		if (!send_one(conn, mode, jobs[i]))
			return false;
	metrics_db_pipeline();
	return true;
}

void
pipeline_read(PGconn *conn, struct db_job *job, const char *pool, double sent_at, bool *broken)
{
	struct results r = {0};

	memset(&job->reply, 0, sizeof job->reply);
	if (!*broken && !read_one(conn, &r))
	{
		log_msg(LOG_ERROR, "%s: %s connection lost", statement_name(job->stmt), pool);
		*broken = true;
	}
	if (*broken)
		reply_unavailable(&job->reply);
	else
	{
		metrics_db_roundtrip(now_ms() - sent_at);
		reply_from_results(conn, job->stmt, &r, &job->reply, broken);
	}
	results_clear(&r, job->reply.res);
}
