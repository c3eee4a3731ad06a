/* What the HTTP side hands the database side and gets back: a job (the
 * statement a request runs, its parameters) and its reply. The database
 * side: pool.h (the pools, db_submit()), pipeline.h (one batch on one
 * connection), reply.h (results to HTTP statuses), statements.h (the
 * prepared statements), grants.h (the grants check). */
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
	/* pool.c's own */
	struct db_job *next;
	double		queued_at;
	bool		on_replica;
};

/* Frees what a reply holds. */
static inline void
db_reply_free(struct db_reply *reply)
{
	PQclear(reply->res);
	reply->res = NULL;
}

#endif
