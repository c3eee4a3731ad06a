/*
 * org_context.h: the org context (org_context.c): set by authentication for
 * the role that authenticated, undone by a subtransaction abort or a SECURITY
 * DEFINER function's return, cleared at transaction end; and running a call
 * as the extension's owner.
 */
#ifndef SDR_ORG_CONTEXT_H
#define SDR_ORG_CONTEXT_H

#include "sdr_creds.h"

#define PRINCIPAL_MAX 72		/* "key:<uuid>", "jwt:<sub>", "service:<role>" */

extern void org_context_set(const pg_uuid_t *org, Oid role, const char *principal);
extern bool org_context_get(pg_uuid_t *org, Oid role);

/* Who established the current org context ("key:<id>", "jwt:<sub>", "service:<role>"), or "-". */
extern const char *org_context_principal(void);

/* Running a call with its owner's privileges (see owner_enter). */
typedef struct OwnerContext
{
	Oid			user;
	int			sec_context;
} OwnerContext;
extern void owner_enter(FunctionCallInfo fcinfo, OwnerContext *ctx);
extern void owner_leave(const OwnerContext *ctx);

/* Registers the context's transaction and subtransaction callbacks and its fmgr hook (from _PG_init). */
extern void org_context_init(void);

#endif
