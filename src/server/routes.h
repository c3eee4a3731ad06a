/* The route table: method and path pattern to the statement a request runs,
 * and the checks on its arguments that need no database (UUID syntax,
 * integer limit/offset, UTF-8 text). Pure functions of their inputs, with no
 * dependency on the rest of the server (the route fuzz harness links only
 * this file). */
#ifndef SDR_SERVER_ROUTES_H
#define SDR_SERVER_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

enum action
{
	ACT_NONE = 0,				/* method not allowed on this path */
	ACT_HEALTHZ,
	ACT_READYZ,
	ACT_METRICS,
	ACT_OPENAPI,				/* GET /openapi.json (openapi.c) */
	ACT_DB,						/* authenticate, then run stmt */
	ACT_REFRESH					/* ACT_DB, then wait for the refresh (refresh.h) */
};

/* The routes, for per-route counters; R_NONE is any unknown path ("-"). */
enum route_id
{
	R_HEALTHZ, R_READYZ, R_METRICS, R_OPENAPI, R_COLLECTION, R_PROVIDER, R_ID, R_REFRESH, R_NONE,
	R_COUNT
};

struct route_match
{
	enum route_id route;		/* R_NONE if none */
	const char *pattern;		/* route pattern for the access log; "-" if none */
	int			status;			/* 0 if routed, else 404 or 405 */
	const char *allow;			/* methods for a 405's Allow header */
	enum action action;
	enum stmt_id stmt;
	bool		wants_body;
	int			nparams;
	const char *params[DB_MAX_PARAMS];
	const char *invalid;		/* set: answer 422 with this detail once authenticated */
	char		limit[12];
	char		offset[12];
	char		id[40];			/* R_REFRESH: the id segment, cut from the path */
};

/* Matches a request. path is the URL path after routes_unescape(); limit and
 * offset are the query values (NULL when absent). Pointers into path are kept. */
void		routes_match(const char *method, const char *path,
						 const char *limit, const char *offset,
						 struct route_match *m);

/* A route's pattern ("-" for R_NONE). */
const char *routes_pattern(enum route_id id);

/* Binds a POST body (len bytes, NUL-terminated) to a matched STMT_STORE. */
void		routes_set_body(struct route_match *m, const char *body, size_t len);

/* Percent-decodes s in place except %00 and %2F, which stay as written (a
 * decoded NUL would cut the text, a decoded slash would split a segment).
 * Returns the new length. */
size_t		routes_unescape(char *s);

/* True if s[0..len) is well-formed UTF-8 with no NUL byte (what PostgreSQL
 * accepts as text in a UTF8 database). */
bool		utf8_valid(const char *s, size_t len);

/* True if s is a UUID in canonical 8-4-4-4-12 hex form. */
bool		routes_is_uuid(const char *s);

#endif
