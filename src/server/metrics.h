/* The server's Prometheus metrics (GET /metrics): counters and histograms
 * kept in fixed arrays of C11 atomics, updated with relaxed increments (no
 * lock and no allocation on the request path), rendered in the text
 * exposition format 0.0.4. No label takes an unbounded value: routes are
 * patterns, methods and statuses come from small fixed tables. The other
 * files tell it what happened; it calls none of them but routes.c (the
 * /metrics handler hands it the pool's counts). */
#ifndef SDR_SERVER_METRICS_H
#define SDR_SERVER_METRICS_H

#include <stddef.h>

#include "routes.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Connections refused or closed for a limit. */
enum reject_reason
{
	REJECT_BODY,				/* 413 */
	REJECT_HEADERS,				/* 431 */
	REJECT_PER_ADDR,			/* refused at a connection cap */
	REJECT_DEADLINE,			/* closed by the request deadline */
	REJECT_COUNT
};

/* A request answered (status 0: closed before any response), taking ms. */
void		metrics_request(enum route_id route, const char *method, int status, double ms);

/* One statement's result came ms after its pipeline was sent. */
void		metrics_db_roundtrip(double ms);

/* A pipeline (a batch of statements) was sent. */
void		metrics_db_pipeline(void);

/* A pool connection was opened again after it was lost. */
void		metrics_reconnect(void);

/* A read the standbys could not answer was sent to the primary. */
void		metrics_read_fallback(void);

void		metrics_rejected(enum reject_reason reason);

/* An HTTP connection opened (+1) or closed (-1). */
void		metrics_connection(int delta);

/* The database pools' connections at a scrape (db_pool_counts()): busy
 * (running a pipeline), idle (open), broken (closed, to reopen). */
struct metrics_pool
{
	int			busy;
	int			idle;
	int			broken;
};

/* The exposition text (malloc'ed, *len bytes), or NULL if out of memory;
 * pool: the connection counts to report. */
char	   *metrics_render(const struct metrics_pool *pool, size_t *len);

#endif
