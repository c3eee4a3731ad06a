/*
 * redact.c: keeps secrets out of the server log, pg_stat_activity and
 * pg_stat_statements.
 *
 * Two rules, applied together:
 *
 * - By content. Any API-key-shaped string ("sk_live_" or "sk_test_" followed
 *   by base64url characters) or JWT-shaped string ("eyJ" + base64url "."
 *   base64url "." base64url-or-empty) is a secret wherever it appears: in a
 *   log line's message (log_statement, durations), its DETAIL (bind
 *   parameters), CONTEXT, HINT or internal query, it is replaced by
 *   "<withheld by sdr_creds>"; a statement that holds one is not printed as
 *   the STATEMENT: line of an error, is reported to pg_stat_activity as
 *   "<withheld by sdr_creds>", and reaches pg_stat_statements (which keeps the
 *   raw text of utility statements: DO, EXPLAIN, CALL, ...) with the secret's
 *   characters masked.
 *
 * - By statement. Tokens need not be key-shaped, so for every log line
 *   emitted while a statement that names sdr_creds runs, the statement text
 *   is withheld when it holds a literal, bind parameters are withheld, the
 *   STATEMENT: line is dropped, and input errors lose the detail and context
 *   that would quote the input.
 *
 * The scan (find_secret) is a single pass without a regex library. It runs
 * for every log line, and over the client's statement text once per string at
 * parse analysis (simple queries, extended-protocol Parse) and once per
 * top-level execution (a prepared statement's Execute: a few dozen bytes);
 * a utility statement, top-level or not, scans its own part of its string.
 * Other statements run by functions are not scanned.
 *
 * The log hook sees a backend's log lines only once the library is loaded, so
 * load it with shared_preload_libraries. There, the ProcessUtility hook is
 * installed from shmem_startup_hook, after every preloaded library's _PG_init
 * ran, so it runs before (outside) pg_stat_statements' whatever the order of
 * shared_preload_libraries.
 */
#include "sdr_creds.h"

#include "redact.h"

#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/backend_status.h"
#include "utils/elog.h"

#define WITHHELD "<withheld by sdr_creds>"

static emit_log_hook_type prev_emit_log_hook = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;
static ExecutorRun_hook_type prev_ExecutorRun_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool utility_hook_installed = false;

/* base64url: A-Z a-z 0-9 - _ */
static inline bool
is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '_';
}


static const char *
skip_b64(const char *p)
{
	while (is_b64url(*p))
		p++;
	return p;
}

/*
 * Finds the first secret-shaped substring of the NUL-terminated s that starts
 * before lim (NULL: anywhere): an API key ("sk_live_"/"sk_test_" + at least
 * one base64url character) or a JWT ("eyJ" + base64url "." base64url+ "."
 * base64url*). Sets [*start, *end) and returns true, or returns false.
 *
 * Linear: a candidate that fails is abandoned at the character where it
 * failed, since any candidate starting inside the base64url run already
 * scanned would fail at the same character.
 */
static bool
find_secret_before(const char *s, const char *lim, const char **start, const char **end)
{
	const char *p = s;

	while (*p && (lim == NULL || p < lim))
	{
		if (p[0] == 's' && p[1] == 'k' && p[2] == '_' &&
			((p[3] == 'l' && p[4] == 'i' && p[5] == 'v' && p[6] == 'e') ||
			 (p[3] == 't' && p[4] == 'e' && p[5] == 's' && p[6] == 't')) &&
			p[7] == '_' && is_b64url(p[8]))
		{
			*start = p;
			*end = skip_b64(p + 8);
			return true;
		}
		if (p[0] == 'e' && p[1] == 'y' && p[2] == 'J')
		{
			const char *h = skip_b64(p + 3);	/* header */
			const char *b;

			if (*h != '.')
			{
				p = h;
				continue;
			}
			b = skip_b64(h + 1);	/* payload: not empty */
			if (b == h + 1)
			{
				p = h + 1;
				continue;
			}
			if (*b != '.')
			{
				p = b;
				continue;
			}
			*start = p;
			*end = skip_b64(b + 1);	/* signature: may be empty */
			return true;
		}
		p++;
	}
	return false;
}

static bool
find_secret(const char *s, const char **start, const char **end)
{
	return find_secret_before(s, NULL, start, end);
}

/* Whether s holds an API-key- or JWT-shaped string anywhere. */
bool
redact_has_secret(const char *s)
{
	const char *a,
			   *b;

	return s != NULL && find_secret(s, &a, &b);
}

/*
 * A copy of s with each secret-shaped substring replaced by WITHHELD, or NULL
 * when s holds none.
 */
static char *
withhold_secrets(const char *s)
{
	StringInfoData out;
	const char *a,
			   *b;

	if (s == NULL || !find_secret(s, &a, &b))
		return NULL;
	initStringInfo(&out);
	do
	{
		appendBinaryStringInfo(&out, s, a - s);
		appendStringInfoString(&out, WITHHELD);
		s = b;
	} while (find_secret(s, &a, &b));
	appendStringInfoString(&out, s);
	return out.data;
}

/*
 * A copy of s of the same length with each secret-shaped substring masked, or
 * NULL when s holds none. The prefix ("sk_live_", "sk_test_", "eyJ") and a
 * JWT's dots stay; every other character becomes 'x', except a '-' next to
 * another '-'. Same length, so statement locations and lengths into the copy
 * stay valid; and the copy lexes as the original does (pg_stat_statements
 * re-lexes it to normalise constants): inside a literal or comment nothing
 * changes, outside one an identifier stays an identifier and no comment
 * ("--") starts or ends.
 */
static char *
mask_secrets(const char *s)
{
	const char *a,
			   *b;
	char	   *copy;

	if (s == NULL || !find_secret(s, &a, &b))
		return NULL;
	copy = pstrdup(s);
	do
	{
		const char *p = a + (a[0] == 's' ? 8 : 3);

		for (; p < b; p++)
			if (*p != '.' && !(*p == '-' && (p[-1] == '-' || p[1] == '-')))
				copy[p - s] = 'x';
	} while (find_secret(b, &a, &b));
	return copy;
}

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

/* Replaces the secret-shaped parts of a message field, if any. */
static void
scrub_field(char **field)
{
	char	   *clean = withhold_secrets(*field);

	if (clean)
	{
		pfree(*field);
		*field = clean;
	}
}

static void
redact_log(ErrorData *e)
{
	const char *q = debug_query_string;
	bool		secret_stmt = redact_has_secret(q);

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

	/* By content, whatever the statement says. */
	if (secret_stmt)
		e->hide_stmt = true;
	scrub_field(&e->message);
	scrub_field(&e->detail);
	scrub_field(&e->detail_log);
	scrub_field(&e->hint);
	scrub_field(&e->context);
	scrub_field(&e->internalquery);

	/*
	 * A statement that fails before parse analysis (a syntax error, an aborted
	 * transaction) stays in pg_stat_activity as sent.
	 */
	if (secret_stmt && e->elevel == ERROR)
		pgstat_report_activity(STATE_RUNNING, WITHHELD);

	if (prev_emit_log_hook)
		prev_emit_log_hook(e);
}

/*
 * Reports WITHHELD as the backend's activity. Reporting a running statement
 * clears its query id; put it back.
 */
static void
report_withheld(uint64 query_id)
{
	pgstat_report_activity(STATE_RUNNING, WITHHELD);
	if (query_id != UINT64CONST(0))
		pgstat_report_query_id(query_id, false);
}

/*
 * Whether s is the statement the client sent (Execute passes down a copy of
 * it, hence the strcmp; nested statements differ at once).
 */
static bool
is_client_text(const char *s)
{
	return s != NULL && debug_query_string != NULL &&
		(s == debug_query_string || strcmp(s, debug_query_string) == 0);
}

/*
 * pg_stat_activity shows the client's statement text (and keeps showing it
 * while the session is idle). A top-level statement holding a secret is
 * reported as WITHHELD instead: at parse analysis (simple queries report the
 * text before parsing), and again when an extended-protocol execution or a
 * utility statement starts (Bind and Execute report the text again).
 * Statements run inside functions are not shown there, so only the client's
 * text, debug_query_string, is scanned.
 */
static void
redact_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);

	/*
	 * Scan the whole string once, at its first statement (location 0), not
	 * once per statement of a multi-statement string.
	 */
	if (query->stmt_location <= 0 && is_client_text(pstate->p_sourcetext) &&
		redact_has_secret(pstate->p_sourcetext))
		report_withheld(UINT64CONST(0));	/* the caller reports the query id */
}

static void
redact_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				   bool execute_once)
{
	/* Once per string: at its first statement. */
	if (queryDesc->plannedstmt->stmt_location <= 0 && is_client_text(queryDesc->sourceText) &&
		redact_has_secret(queryDesc->sourceText))
		report_withheld(queryDesc->plannedstmt->queryId);

	if (prev_ExecutorRun_hook)
		prev_ExecutorRun_hook(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
}

/*
 * Utility statements (DO, EXPLAIN, CALL, PREPARE, DECLARE, ...) run from their
 * parse tree; the query string passed along serves error positions and
 * reporting, and pg_stat_statements stores it raw (it normalises constants
 * only in planned statements). The hooks below this one get a copy with the
 * secrets masked, of the same length so stmt_location/stmt_len stay valid.
 */
static void
redact_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					  ProcessUtilityContext context, ParamListInfo params,
					  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	char	   *masked = NULL;

	/*
	 * Scan this statement's part of the string (so a long script of many
	 * statements is scanned once in all); when it holds a secret, mask the
	 * whole string. PREPARE and DECLARE keep the whole string (in
	 * pg_prepared_statements, pg_cursors): scan all of it for them.
	 */
	if (queryString != NULL)
	{
		const char *from = queryString;
		const char *lim = NULL;
		const char *a,
				   *b;

		if (pstmt->stmt_location >= 0 && !IsA(pstmt->utilityStmt, PrepareStmt) &&
			!IsA(pstmt->utilityStmt, DeclareCursorStmt))
		{
			from = queryString + pstmt->stmt_location;
			if (pstmt->stmt_len > 0)
				lim = from + pstmt->stmt_len;
		}
		if (find_secret_before(from, lim, &a, &b))
			masked = mask_secrets(queryString);
	}

	if (masked)
	{
		if (is_client_text(queryString))
			report_withheld(pstmt->queryId);
		queryString = masked;
	}
	if (prev_ProcessUtility_hook)
		prev_ProcessUtility_hook(pstmt, queryString, readOnlyTree, context, params,
								 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

static void
install_utility_hook(void)
{
	if (utility_hook_installed)
		return;
	utility_hook_installed = true;
	prev_ProcessUtility_hook = ProcessUtility_hook;
	ProcessUtility_hook = redact_ProcessUtility;
}

/*
 * The postmaster calls shmem_startup_hook after every preloaded library's
 * _PG_init (and again after a crash restart: installed once).
 */
static void
redact_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	install_utility_hook();
}

void
redact_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_log;
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = redact_post_parse_analyze;
	prev_ExecutorRun_hook = ExecutorRun_hook;
	ExecutorRun_hook = redact_ExecutorRun;
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = redact_shmem_startup;
	}
	else
		install_utility_hook();
}

/* Called by functions that receive secrets: hides a literal-bearing statement from pg_stat_activity. */
void
redact_activity(void)
{
	const char *q = debug_query_string;

	if (q && has_literal(q))
		pgstat_report_activity(STATE_RUNNING, WITHHELD);
}
