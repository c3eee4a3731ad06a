/* The route table: method and path pattern to the statement a request runs,
 * and the checks on its arguments that need no database (UUID syntax,
 * integer limit/offset, UTF-8 text). Paths are matched segment by segment
 * as sent: no dot-segment or slash normalisation, so "..", "//" and encoded
 * slashes never reach another route. */
#include "routes.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "../hex.h"

#define LIST_DEFAULT_LIMIT	"100"	/* sdr_creds.list()'s defaults */
#define LIST_DEFAULT_OFFSET	"0"

struct handler
{
	enum action action;
	enum stmt_id stmt;
};

static const struct route
{
	const char *pattern;
	const char *allow;
	struct handler get;			/* also HEAD */
	struct handler post;
	struct handler delete;
}			routes[] = {
	[R_HEALTHZ] = {"/healthz", "GET, HEAD", .get = {ACT_HEALTHZ, STMT_NONE}},
	[R_READYZ] = {"/readyz", "GET, HEAD", .get = {ACT_READYZ, STMT_NONE}},
	[R_METRICS] = {"/metrics", "GET, HEAD", .get = {ACT_METRICS, STMT_NONE}},
	[R_OPENAPI] = {"/openapi.json", "GET, HEAD", .get = {ACT_OPENAPI, STMT_NONE}},
	[R_NONE] = {"-", NULL},
	[R_COLLECTION] = {"/integration-credentials/", "GET, HEAD, POST",
	.get = {ACT_DB, STMT_LIST}, .post = {ACT_DB, STMT_STORE}},
	[R_PROVIDER] = {"/integration-credentials/provider/{provider}", "GET, HEAD",
	.get = {ACT_DB, STMT_GET_BY_PROVIDER}},
	[R_ID] = {"/integration-credentials/{credentials_id}", "GET, HEAD, DELETE",
	.get = {ACT_DB, STMT_GET}, .delete = {ACT_DB, STMT_DELETE}},
	[R_REFRESH] = {"/integration-credentials/{credentials_id}/refresh", "POST",
	.post = {ACT_REFRESH, STMT_REQUEST_REFRESH}},
};

bool
routes_is_uuid(const char *s)
{
	unsigned char bytes[16];

	return uuid_parse(s, strlen(s), bytes);
}

/* An optionally signed decimal integer, clamped to the int range (the
 * database rejects values outside its own limits with its own message). */
static bool
parse_int(const char *s, char *out, size_t size)
{
	long long	v = 0;
	bool		neg = false;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (*s == '\0')
		return false;
	for (; *s; s++)
	{
		if (*s < '0' || *s > '9')
			return false;
		if (v <= INT_MAX)
			v = v * 10 + (*s - '0');
	}
	if (neg)
		v = -v;
	v = v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : v;
	snprintf(out, size, "%d", (int) v);
	return true;
}

/* The route a path names, and its path argument (provider or id), if any. */
static enum route_id
route_find(const char *path, const char **arg)
{
	static const char base[] = "/integration-credentials";
	static const enum route_id fixed[] = {R_HEALTHZ, R_READYZ, R_METRICS, R_OPENAPI};
	const char *rest = path + sizeof base - 1;
	const char *slash;

	*arg = NULL;
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		if (strcmp(path, routes[fixed[i]].pattern) == 0)
			return fixed[i];
	if (strncmp(path, base, sizeof base - 1) != 0)
		return R_NONE;
	if (rest[0] == '\0' || strcmp(rest, "/") == 0)
		return R_COLLECTION;
	if (strncmp(rest, "/provider/", 10) == 0 && rest[10] != '\0' && strchr(rest + 10, '/') == NULL)
	{
		*arg = rest + 10;
		return R_PROVIDER;
	}
	if (rest[0] == '/' && rest[1] != '\0' && strchr(rest + 1, '/') == NULL)
	{
		*arg = rest + 1;
		return R_ID;
	}
	if (rest[0] == '/' && rest[1] != '/' && (slash = strchr(rest + 1, '/')) != NULL &&
		strcmp(slash, "/refresh") == 0)
	{
		*arg = rest + 1;		/* up to the slash: see bind_params() */
		return R_REFRESH;
	}
	return R_NONE;
}

/* A route's handler for a method, or NULL if the method is not one it knows. */
static const struct handler *
route_handler(const struct route *r, const char *method)
{
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
		return &r->get;
	if (strcmp(method, "POST") == 0)
		return &r->post;
	if (strcmp(method, "DELETE") == 0)
		return &r->delete;
	return NULL;
}

/* The statement's parameters, and the 422 detail when one is invalid. */
static void
bind_params(struct route_match *m, const char *arg, const char *limit, const char *offset)
{
	switch (m->stmt)
	{
		case STMT_GET_BY_PROVIDER:
			m->nparams = 1;
			m->params[0] = arg;
			if (!utf8_valid(arg, strlen(arg)))
				m->invalid = "Invalid provider: must be UTF-8 text";
			break;
		case STMT_GET:
		case STMT_DELETE:
			m->nparams = 1;
			m->params[0] = arg;
			if (!routes_is_uuid(arg))
				m->invalid = "Invalid credentials_id: must be a UUID";
			break;
		case STMT_REQUEST_REFRESH:
			m->nparams = 1;
			m->params[0] = m->id;
			if (strcspn(arg, "/") >= sizeof m->id)
				m->invalid = "Invalid credentials_id: must be a UUID";
			else
			{
				memcpy(m->id, arg, strcspn(arg, "/"));
				if (!routes_is_uuid(m->id))
					m->invalid = "Invalid credentials_id: must be a UUID";
			}
			break;
		case STMT_LIST:
			m->nparams = 2;
			m->params[0] = m->limit;
			m->params[1] = m->offset;
			if (!parse_int(limit ? limit : LIST_DEFAULT_LIMIT, m->limit, sizeof m->limit))
				m->invalid = "Invalid limit: must be an integer";
			else if (!parse_int(offset ? offset : LIST_DEFAULT_OFFSET, m->offset, sizeof m->offset))
				m->invalid = "Invalid offset: must be an integer";
			break;
		case STMT_STORE:
			m->wants_body = true;
			m->nparams = 1;
			break;
		default:
			break;
	}
}

void
routes_match(const char *method, const char *path,
			 const char *limit, const char *offset, struct route_match *m)
{
	const char *arg;
	enum route_id id = route_find(path, &arg);
	const struct handler *h;

	memset(m, 0, sizeof *m);
	m->route = id;
	m->pattern = routes[id].pattern;
	m->stmt = STMT_NONE;
	if (id == R_NONE)
	{
		m->status = 404;
		return;
	}
	h = route_handler(&routes[id], method);
	if (h == NULL || h->action == ACT_NONE)
	{
		m->status = 405;
		m->allow = routes[id].allow;
		return;
	}
	m->action = h->action;
	m->stmt = h->stmt;
	bind_params(m, arg, limit, offset);
}

const char *
routes_pattern(enum route_id id)
{
	return (unsigned) id < R_COUNT ? routes[id].pattern : "-";
}

void
routes_set_body(struct route_match *m, const char *body, size_t len)
{
	m->params[0] = body;
	if (!utf8_valid(body, len))
		m->invalid = "Invalid JSON: the request body must be UTF-8 text";
}

size_t
routes_unescape(char *s)
{
	char	   *w = s;

	for (char *r = s; *r; r++)
	{
		int			hi,
					lo;

		if (*r == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 &&
			(hi << 4 | lo) != 0 && (hi << 4 | lo) != '/')
		{
			*w++ = (char) (hi << 4 | lo);
			r += 2;
		}
		else
			*w++ = *r;
	}
	*w = '\0';
	return (size_t) (w - s);
}

bool
utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t		n;
		unsigned int lo = 0x80, hi = 0xbf;

		if (c == 0)
			return false;
		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
		{
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;		/* overlong */
			else if (c == 0xed)
				hi = 0x9f;		/* surrogates */
		}
		else if (c >= 0xf0 && c <= 0xf4)
		{
			n = 3;
			if (c == 0xf0)
				lo = 0x90;		/* overlong */
			else if (c == 0xf4)
				hi = 0x8f;		/* above U+10FFFF */
		}
		else
			return false;
		if (len - i <= n)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += n + 1;
	}
	return true;
}
