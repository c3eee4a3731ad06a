/* The database pools: a fixed pool of libpq connections to the primary and
 * one to the standbys, each connection with a thread that runs the queued
 * jobs in batches, reconnecting with backoff. The database side's entry
 * points (db_*), called by http.c and main.c. */
#ifndef SDR_SERVER_POOL_H
#define SDR_SERVER_POOL_H

#include "db.h"

/* Opens the pools and starts their threads: the primary's and, with
 * read_conninfo (NULL or "": none), the standbys'; connection failures here
 * are logged, not fatal. prepare: prepare the statements on each
 * connection; false (--no-prepare): send each with its text, as the unnamed
 * statement (PgBouncer's transaction mode before 1.21). */
int			db_init(const char *conninfo, const char *read_conninfo, int size, bool prepare);

/* Queues a job. Each pool connection has a thread that takes every job
 * waiting (up to a bound) and sends their statements in one pipeline, each
 * with its own Sync (its own transaction), then reads the replies in order.
 * Reads go to the standbys when there are any, and to the primary when they
 * cannot answer. done may run before db_submit returns. */
void		db_submit(struct db_job *job);

/* The pool's connections now: running statements, open and idle, or closed
 * (to be reopened by the next statements they take). */
void		db_pool_counts(int *busy, int *idle, int *broken);

/* Asks the server to cancel every statement in flight (used when a graceful
 * stop takes too long). */
void		db_cancel_busy(void);

/* Runs the jobs still queued, stops the threads, and closes every
 * connection; later jobs are answered 503 at once. */
void		db_close(void);

#endif
