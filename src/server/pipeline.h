/* One batch of jobs on one connection: their statements sent in one
 * pipeline, each with its own Sync (its own transaction), then their
 * results read in order. */
#ifndef SDR_SERVER_PIPELINE_H
#define SDR_SERVER_PIPELINE_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "db.h"
#include "statements.h"

/* Sends the n jobs' statements in one pipeline, as mode says (prepared or
 * unnamed); false if that failed (the connection must then be dropped). */
bool		pipeline_send(PGconn *conn, const struct stmt_mode *mode, struct db_job **jobs, int n);

/* Reads the next job's results into its reply (503 if *broken, or if the
 * connection fails now: *broken is then set). sent_at: now_ms() when the
 * pipeline was sent. pool names the pool in the log. */
void		pipeline_read(PGconn *conn, struct db_job *job, const char *pool,
						  double sent_at, bool *broken);

#endif
