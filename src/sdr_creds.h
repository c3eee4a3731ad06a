/*
 * sdr_creds.h: what every file of the extension shares: its settings, the org
 * context, running a call as the extension's owner, and errors with
 * PostgREST-style SQLSTATEs and the API's messages.
 */
#ifndef SDR_CREDS_H
#define SDR_CREDS_H

#include "postgres.h"

#include "fmgr.h"
#include "messages.h"

#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* Settings (sdr_creds.c) */
extern char *sdr_keyring_file;
extern char *sdr_jwt_secret;
extern char *sdr_jwt_audience;
extern int	sdr_audit;			/* sdr_creds.audit */

typedef enum
{
	AUDIT_NONE, AUDIT_WRITES, AUDIT_ALL
} AuditLevel;

/*
 * Errors the API raises carry SQLSTATE PTxyz, xyz being the HTTP status, as
 * PostgREST does. errhidestmt keeps the statement (which may hold a token)
 * out of the server log. The call in progress is reported as failed with
 * that status first (monitor.c: audit log, usage statistics).
 */
#define SDR_ERROR(status, ...) \
	do { \
		monitor_call_failed(status); \
		ereport(ERROR, \
				(errcode(MAKE_SQLSTATE('P', 'T', (status)[0], (status)[1], (status)[2])), \
				 errmsg(__VA_ARGS__), errhidestmt(true))); \
	} while (0)

extern void monitor_call_failed(const char *status);

/*
 * Statements the extension runs name every schema, function and operator, so
 * no search_path can redirect them (see owner_enter).
 */
#define EQ " OPERATOR(pg_catalog.=) "
#define NE " OPERATOR(pg_catalog.<>) "
#define GT " OPERATOR(pg_catalog.>) "

/*
 * The org context (sdr_creds.c): set by authentication for the role that
 * authenticated, undone by a subtransaction abort or a SECURITY DEFINER
 * function's return, cleared at transaction end.
 */
extern void org_context_set(const pg_uuid_t *org, Oid role, const char *principal);
extern bool org_context_get(pg_uuid_t *org, Oid role);

/* Who established the current org context ("key:<id>", "jwt:<sub>", "service:<role>"), or "-". */
extern const char *org_context_principal(void);

/* Running a call with its owner's privileges (sdr_creds.c) */
typedef struct OwnerContext
{
	Oid			user;
	int			sec_context;
} OwnerContext;
extern void owner_enter(FunctionCallInfo fcinfo, OwnerContext *ctx);
extern void owner_leave(const OwnerContext *ctx);

/* Starts a set-returning function's result as a tuplestore (usage.c). */
extern void srf_begin(FunctionCallInfo fcinfo);

#endif
