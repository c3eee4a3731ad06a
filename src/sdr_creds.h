/*
 * sdr_creds.h: what every file of the extension shares, and nothing more:
 * the PostgreSQL headers, errors with PostgREST-style SQLSTATEs and the API's
 * messages, the operators its statements name, and when a transaction ends. It is the base header of
 * the extension, not the header of sdr_creds.c (which is on top and exports
 * nothing but _PG_init and two SQL functions).
 */
#ifndef SDR_CREDS_H
#define SDR_CREDS_H

#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "messages.h"

#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

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
 * Whether a transaction callback's event ends the transaction (committed,
 * aborted or prepared): where each module forgets its per-transaction state.
 */
static inline bool
xact_event_ends(XactEvent event)
{
	return event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE;
}

#endif
