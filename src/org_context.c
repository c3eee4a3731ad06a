/*
 * org_context.c: the org context and its scope (role, subtransaction,
 * SECURITY DEFINER call), and running a call as the extension's owner.
 * org_context_init() (from _PG_init) registers the callbacks and the hook
 * that scope the context; nothing here calls another file of the extension.
 */
#include "sdr_creds.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "org_context.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

/*
 * The org context: the org this transaction acts for, and the role that
 * established it. It lives in backend memory, not in a setting, so
 * SET/set_config cannot forge it; only org_context_set() writes it.
 *
 * It is scoped like a setting made with SET LOCAL inside a function, but
 * stricter:
 * - it is valid only for the role that established it (the caller of
 *   authenticate*() or act_as(), before any switch to the owner);
 * - a subtransaction that aborts undoes what it set (SubXactCallback);
 * - a SECURITY DEFINER function that set it under its owner's identity takes
 *   it away when it returns (fmgr_hook), so a wrapper cannot hand its org to
 *   its caller, nor to the rest of the transaction;
 * - it ends with the transaction, committed or aborted (XactCallback).
 * States it replaced are kept on a stack, innermost first, so each of those
 * ends restores what was there before.
 */
typedef struct OrgContext
{
	bool		valid;
	pg_uuid_t	org;
	Oid			role;			/* who established it */
	int			xact_level;		/* subtransaction nesting level that set it */
	int			call_depth;		/* SECURITY DEFINER call depth that set it */
	char		principal[PRINCIPAL_MAX];	/* who, for the audit log and statistics */
} OrgContext;

static OrgContext org_now;
static List *org_saved = NIL;	/* OrgContext *, in TopTransactionContext */
static int	call_depth = 0;
static fmgr_hook_type prev_fmgr_hook = NULL;

void
org_context_set(const pg_uuid_t *org, Oid role, const char *principal)
{
	int			level = GetCurrentTransactionNestLevel();

	if (org_now.xact_level != level || org_now.call_depth != call_depth)
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
		OrgContext *saved = palloc(sizeof(OrgContext));

		*saved = org_now;
		org_saved = lcons(saved, org_saved);
		MemoryContextSwitchTo(old);
	}
	org_now.valid = true;
	org_now.org = *org;
	org_now.role = role;
	strlcpy(org_now.principal, principal, sizeof(org_now.principal));
	org_now.xact_level = level;
	org_now.call_depth = call_depth;
}

bool
org_context_get(pg_uuid_t *org, Oid role)
{
	if (!org_now.valid || org_now.role != role)
		return false;
	if (org)
		*org = org_now.org;
	return true;
}

const char *
org_context_principal(void)
{
	return org_now.valid ? org_now.principal : "-";
}

/* Goes back to the state the current one replaced. */
static void
org_context_pop(void)
{
	if (org_saved == NIL)
	{
		memset(&org_now, 0, sizeof(org_now));
		return;
	}
	org_now = *(OrgContext *) linitial(org_saved);
	org_saved = list_delete_first(org_saved);	/* frees, allocates nothing */
}

static void
org_context_reset(void)
{
	memset(&org_now, 0, sizeof(org_now));
	org_saved = NIL;			/* its memory goes with TopTransactionContext */
}

static void
org_xact_end(XactEvent event, void *arg)
{
	if (xact_event_ends(event))
		org_context_reset();
}

/* A committed subtransaction hands what it set to its parent; an aborted one undoes it. */
static void
org_subxact_end(SubXactEvent event, SubTransactionId mySubid,
				SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (org_now.xact_level >= level)	/* the empty state's level is 0 */
			org_context_pop();
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		if (org_now.xact_level == level)
			org_now.xact_level = level - 1;
		foreach(lc, org_saved)
		{
			OrgContext *s = lfirst(lc);

			if (s->xact_level == level)
				s->xact_level = level - 1;
		}
	}
}

/*
 * Around every SECURITY DEFINER call: when it returns, a context it
 * established for a role other than its caller's is taken away.
 */
static void
org_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, private);
	if (event == FHET_START)
	{
		call_depth++;
		return;
	}
	if (event == FHET_END)
	{
		Oid			caller = GetUserId();	/* already switched back */
		ListCell   *lc;

		while (org_now.call_depth >= call_depth && org_now.valid && org_now.role != caller)
			org_context_pop();
		if (org_now.call_depth >= call_depth)
			org_now.call_depth = call_depth - 1;
		foreach(lc, org_saved)
		{
			OrgContext *s = lfirst(lc);

			if (s->call_depth >= call_depth)
				s->call_depth = call_depth - 1;
		}
	}
	/* FHET_ABORT: the error's (sub)transaction abort restores the context. */
	call_depth--;				/* START, END and ABORT always pair */
}

/*
 * Registers what scopes the context (from _PG_init, after monitor_init: the
 * context is cleared before the monitor writes what is left at transaction
 * end, as callbacks run in the reverse order of their registration).
 */
void
org_context_init(void)
{
	RegisterXactCallback(org_xact_end, NULL);
	RegisterSubXactCallback(org_subxact_end, NULL);
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = org_fmgr_hook;
}

/*
 * Runs the rest of a call with the privileges of the function's owner (the
 * superuser who installed the extension), as SECURITY DEFINER would. The API
 * functions do this in C rather than with SECURITY DEFINER ... SET
 * search_path, whose per-call setting work costs more than the rest of a
 * lookup: every statement they run names its schema, functions and operators
 * (EQ, NE, GT), so no search_path can redirect them. An error restores the
 * caller's identity with the (sub)transaction's abort.
 */
void
owner_enter(FunctionCallInfo fcinfo, OwnerContext *ctx)
{
	Oid		   *owner = fcinfo->flinfo->fn_extra;

	if (owner == NULL)
	{
		HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "sdr_creds: cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
		owner = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));
		*owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
		ReleaseSysCache(tup);
		fcinfo->flinfo->fn_extra = owner;
	}
	GetUserIdAndSecContext(&ctx->user, &ctx->sec_context);
	SetUserIdAndSecContext(*owner, ctx->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
owner_leave(const OwnerContext *ctx)
{
	SetUserIdAndSecContext(ctx->user, ctx->sec_context);
}
