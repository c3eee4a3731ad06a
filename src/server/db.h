/* The database side of the server: a fixed pool of libpq connections, the
 * prepared statements, one pipelined round trip per request, reconnection
 * with backoff, and the mapping of SQLSTATEs to HTTP statuses. */
#ifndef SDR_SERVER_DB_H
#define SDR_SERVER_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

/* The statements a route can run after authentication. */
enum stmt_id
{
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

/* What one round trip produced, ready to become an HTTP response. */
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

/* Opens the pools: the primary's and, with read_conninfo (NULL or "": none),
 * the standbys'; connection failures here are logged, not fatal. */
int			db_init(const char *conninfo, const char *read_conninfo, int size);

/* Authenticates with the two header values (either may be NULL) and the
 * client's address (NULL: unknown), and runs stmt with params (at most
 * DB_MAX_PARAMS), in one statement and one round trip. Reads go to the
 * standbys when there are any, and to the primary when they cannot answer. */
void		db_call(enum stmt_id stmt, int nparams, const char *const *params,
					const char *api_key, const char *authorization, const char *client,
					struct db_reply *reply);

/* Frees what a reply holds. */
void		db_reply_free(struct db_reply *reply);

/* True if a pool connection answers SELECT 1. */
bool		db_ready(void);

/* The pool's connections now: lent to a request, open and idle, or closed
 * (to be reopened by the next request that borrows them). */
void		db_pool_counts(int *busy, int *idle, int *broken);

/* Asks the server to cancel every statement in flight (used when a graceful
 * stop takes too long). */
void		db_cancel_busy(void);

/* Closes every connection; no request may be running. */
void		db_close(void);

#endif
