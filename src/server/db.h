/* The database side of the server: a fixed pool of libpq connections, the
 * prepared statements, the pipelines of queued requests, reconnection
 * with backoff, and the mapping of SQLSTATEs to HTTP statuses. */
#ifndef SDR_SERVER_DB_H
#define SDR_SERVER_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

/* The statements a route can run after authentication. */
enum stmt_id
{
	STMT_READY = -2,			/* SELECT 1 on the primary (GET /readyz) */
	STMT_NONE = -1,				/* authenticate only */
	STMT_GET_BY_PROVIDER = 0,
	STMT_GET,
	STMT_LIST,
	STMT_DELETE,
	STMT_STORE,
	STMT_REQUEST_REFRESH,
	STMT_GET_REFRESHED,			/* STMT_GET, always on the primary */
	STMT_COUNT
};

/* The most parameters a route's statement takes (besides the two headers). */
#define DB_MAX_PARAMS 2

/* What one statement produced, ready to become an HTTP response. */
struct db_reply
{
	int			status;			/* HTTP status; 0 = authenticated, no statement */
	const char *body;			/* JSON body on success (inside res) */
	size_t		body_len;
	const char *detail;			/* error text for {"detail": ...} */
	PGresult   *res;			/* owns body or detail; NULL if none */
	bool		retry;			/* database unavailable: add Retry-After */
	char		org_id[40];		/* the authenticated org, "" if none */
};

/* One request's statement: the caller fills the first part, db_submit()
 * queues it, and a database thread runs it and calls done(job) with the
 * reply filled in. The strings must stay valid until done is called. */
struct db_job
{
	enum stmt_id stmt;
	int			nparams;		/* the route's parameters (at most DB_MAX_PARAMS) */
	const char *params[DB_MAX_PARAMS];
	const char *api_key;		/* the two header values, either may be NULL */
	const char *authorization;
	const char *client;			/* the HTTP client's address, NULL: unknown */
	void		(*done) (struct db_job *job);
	void	   *cls;			/* the caller's */
	struct db_reply reply;
	/* db.c's own */
	struct db_job *next;
	double		queued_at;
	bool		on_replica;
};

/* Opens the pools and starts their threads: the primary's and, with
 * read_conninfo (NULL or "": none), the standbys'; connection failures here
 * are logged, not fatal. */
int			db_init(const char *conninfo, const char *read_conninfo, int size);

/* Queues a job. Each pool connection has a thread that takes every job
 * waiting (up to a bound) and sends their statements in one pipeline, each
 * with its own Sync (its own transaction), then reads the replies in order.
 * Reads go to the standbys when there are any, and to the primary when they
 * cannot answer. done may run before db_submit returns. */
void		db_submit(struct db_job *job);

/* Frees what a reply holds. */
void		db_reply_free(struct db_reply *reply);

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
