/*
 * redact.c: keeps secrets passed to sdr_creds out of the server log and out of
 * pg_stat_activity.
 *
 * A statement that calls sdr_creds may carry a token or an API key, as a
 * literal in its text or as a bind parameter. For every log line emitted
 * while such a statement runs (log_statement, log_min_duration_statement,
 * errors), the statement text is withheld when it holds a literal, bind
 * parameters are withheld, the STATEMENT: line is dropped, and input errors
 * lose the detail and context that would quote the input. The hook sees
 * a backend's log lines only once the library is loaded, so load it with
 * shared_preload_libraries for full coverage.
 */
#include "sdr_creds.h"

#include "pgstat.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/elog.h"

#define WITHHELD "<withheld by sdr_creds>"

static emit_log_hook_type prev_emit_log_hook = NULL;

static bool
mentions_us(const char *s)
{
	return s != NULL && strstr(s, "sdr_creds") != NULL;
}

/* A quoted literal or a dollar-quoted string (not a $1 parameter). */
static bool
has_literal(const char *s)
{
	for (const char *p = s; *p; p++)
		if (*p == '\'' || (*p == '$' && (p[1] == '$' || p[1] == '_' ||
										 (p[1] >= 'A' && p[1] <= 'Z') ||
										 (p[1] >= 'a' && p[1] <= 'z'))))
			return true;
	return false;
}

static void
replace_field(char **field, const char *with)
{
	if (*field)
		pfree(*field);
	*field = with ? pstrdup(with) : NULL;
}

static void
redact_log(ErrorData *e)
{
	const char *q = debug_query_string;

	if (mentions_us(q) || mentions_us(e->message))
	{
		e->hide_stmt = true;
		if (e->detail && pg_strncasecmp(e->detail, "parameters:", 11) == 0)
			replace_field(&e->detail, "parameters: " WITHHELD);
		if (e->context && strstr(e->context, "parameters:"))
			replace_field(&e->context, NULL);
		/* Input errors (bad JSON, say) quote the input in their detail and context. */
		if (ERRCODE_TO_CATEGORY(e->sqlerrcode) == ERRCODE_DATA_EXCEPTION)
		{
			replace_field(&e->detail, NULL);
			replace_field(&e->context, NULL);
		}
		if (e->message && q && q[0] && has_literal(q))
		{
			char	   *at = strstr(e->message, q);

			if (at)
				replace_field(&e->message,
							  psprintf("%.*s%s%s", (int) (at - e->message), e->message,
									   WITHHELD, at + strlen(q)));
		}
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(e);
}

void
redact_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_log;
}

/* Called by functions that receive secrets: hides a literal-bearing statement from pg_stat_activity. */
void
redact_activity(void)
{
	const char *q = debug_query_string;

	if (q && has_literal(q))
		pgstat_report_activity(STATE_RUNNING, WITHHELD);
}
