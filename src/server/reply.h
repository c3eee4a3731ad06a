/* A statement's results as the job's reply: the org id from its first row,
 * then the call's JSON value and its status, or the error's status: a
 * PTxxx SQLSTATE carries its own, connection loss and failures a retry can
 * cure answer 503 (Retry-After), anything else 500. */
#ifndef SDR_SERVER_REPLY_H
#define SDR_SERVER_REPLY_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "db.h"

/* What one statement sent back, up to its Sync. */
struct results
{
	PGresult   *row[2];			/* its first rows, in single-row mode */
	int			nrows;
	PGresult   *error;			/* its error, if it failed */
};

/* The reply of a job the database could not run: 503, Retry-After. */
void		reply_unavailable(struct db_reply *reply);

/* Fills the reply from the statement's results (the reply then owns the
 * result it points into; the caller frees the rest); sets *broken when
 * the connection was lost. */
void		reply_from_results(PGconn *conn, enum stmt_id stmt, struct results *r,
							   struct db_reply *reply, bool *broken);

#endif
