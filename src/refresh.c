/*
 * refresh.c: token refresh on the database's side. PostgreSQL backends never
 * make HTTP calls: the refresher process (src/refresher/) does, between the
 * two functions it is granted here.
 *
 * - store() keeps a credential's expiry as plain metadata.expires_at and in
 *   the indexed column expires_at (refresh_fields).
 * - refresh_claim() locks credentials due for refresh FOR UPDATE SKIP LOCKED
 *   for the calling transaction, so each is claimed by one refresher, and
 *   returns what the refresh request needs, secrets opened.
 * - refresh_record() takes the token endpoint's answer for a credential
 *   claimed in the same transaction: new tokens are sealed and stored at
 *   once; invalid_grant marks it refresh_status = needs_reauthorization (plain
 *   metadata) and stops its refreshes; anything else backs off exponentially
 *   with jitter, at least for Retry-After.
 * - request_refresh() asks for a refresh now and notifies the refreshers.
 * - Each refresh's end (refreshed, needs re-authorization, retry later) is
 *   notified on channel sdr_creds_refreshed when its transaction commits, for
 *   HTTP servers waiting on POST /integration-credentials/{id}/refresh.
 */
#include "sdr_creds.h"

#include <math.h>
#include <sodium.h>

#include "access/xact.h"
#include "auth.h"
#include "commands/async.h"
#include "funcapi.h"
#include "json.h"
#include "mb/pg_wchar.h"
#include "metadata.h"
#include "nodes/pg_list.h"
#include "org_context.h"
#include "refresh.h"
#include "results.h"
#include "rows.h"
#include "statements.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#define EXPIRES_IN_MAX (10 * 365 * 86400.0) /* ten years */
#define UNIX_SECONDS_MAX 253402300799.0 /* 9999-12-31T23:59:59Z */
#define WINDOW_MAX (30 * 86400)
#define CLAIM_MAX 100
#define BODY_MAX (1024 * 1024)
#define BACKOFF_BASE 30.0		/* seconds, doubled at each failure in a row */
#define BACKOFF_MAX 3600.0
#define RETRY_AFTER_MAX 86400
#define NOTIFY_CHANNEL "sdr_creds_refresh"
#define DONE_CHANNEL "sdr_creds_refreshed"
#define NEEDS_REAUTHORIZATION "needs_reauthorization"

/* The claim's columns after the credential's first ones (S_REFRESH_CLAIM). */
enum
{
	Q_CLIENT_ID = C_SEAL_FORMAT + 1, Q_TOKEN_URL, Q_CLIENT_NAME, Q_AUTH_METHOD, Q_SCOPES,
	Q_CLIENT_SECRET, Q_CLIENT_KEY_VERSION, Q_FAILURES
};

/* refresh_claim()'s result columns. */
enum
{
	R_CREDENTIAL, R_ORG, R_PROVIDER, R_TOKEN_URL, R_CLIENT_ID, R_CLIENT_SECRET, R_AUTH_METHOD,
	R_SCOPES, R_REFRESH_TOKEN, R_FAILURES, R_COUNT
};

/* ---------------------------------------------------------------------------
 * Expiry, at store()
 */

/* A JSON number or numeric string as whole seconds within [min, max]. */
static bool
json_seconds(const JsonbValue *v, double min, double max, int64 *out)
{
	char		buf[64];
	char	   *end;
	double		d;

	if (v->type == jbvNumeric)
		d = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											   NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString && v->val.string.len > 0 && v->val.string.len < (int) sizeof(buf))
	{
		memcpy(buf, v->val.string.val, v->val.string.len);
		buf[v->val.string.len] = '\0';
		errno = 0;
		d = strtod(buf, &end);
		if (*end != '\0' || errno != 0)
			return false;
	}
	else
		return false;
	if (!(d >= min && d <= max))	/* NaN too */
		return false;
	*out = (int64) floor(d);
	return true;
}

/* A timestamp in any form timestamptz accepts, finite; false if it is not one. */
static bool
parse_timestamp(const char *s, TimestampTz *out)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		*out = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
													   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	return ok && !TIMESTAMP_NOT_FINITE(*out);
}

/* metadata.expires_at: a timestamp (text) or Unix seconds. */
static bool
expiry_time(const JsonbValue *v, TimestampTz *out)
{
	int64		secs;

	if (v->type == jbvString && v->val.string.len <= 64)
		return parse_timestamp(pnstrdup(v->val.string.val, v->val.string.len), out);
	if (!json_seconds(v, 0, UNIX_SECONDS_MAX, &secs))
		return false;
	*out = time_t_to_timestamptz((pg_time_t) secs);
	return true;
}

/* metadata with its expires_at set to t (RFC 3339, UTC, to the second), or removed. */
static Jsonb *
with_expiry(Jsonb *metadata, bool known, TimestampTz t)
{
	StringInfoData s;
	JsonbValue	v;

	if (!known)
		return metadata_set(metadata, "expires_at", NULL);
	initStringInfo(&s);
	append_timestamp(&s, t);	/* quoted */
	v.type = jbvString;
	v.val.string.val = s.data + 1;
	v.val.string.len = s.len - 2;
	return metadata_set(metadata, "expires_at", &v);
}

/* A non-empty string at a top-level key. */
static bool
has_string(Jsonb *obj, const char *key)
{
	JsonbValue	v;

	return getKeyJsonValueFromContainer(&obj->root, key, strlen(key), &v) &&
		v.type == jbvString && v.val.string.len > 0;
}

Jsonb *
refresh_fields(Jsonb *metadata, TimestampTz now, RefreshFields *rf)
{
	JsonbValue	v;
	int64		secs;

	rf->has_expiry = false;
	rf->expires_at = 0;
	if (getKeyJsonValueFromContainer(&metadata->root, "expires_in", 10, &v) && v.type != jbvNull)
	{
		if (!json_seconds(&v, 0, EXPIRES_IN_MAX, &secs))
			SDR_ERROR("422", "metadata.expires_in must be a number of seconds from 0 to %.0f",
					  EXPIRES_IN_MAX);
		rf->has_expiry = true;
		rf->expires_at = now + secs * USECS_PER_SEC;
	}
	else if (getKeyJsonValueFromContainer(&metadata->root, "expires_at", 10, &v) && v.type != jbvNull)
	{
		if (!expiry_time(&v, &rf->expires_at))
			SDR_ERROR("422", "metadata.expires_at must be a timestamp (RFC 3339) or Unix seconds");
		rf->has_expiry = true;
	}
	metadata = metadata_set(metadata, "expires_in", NULL);
	metadata = metadata_set(metadata, "refresh_status", NULL);
	metadata = with_expiry(metadata, rf->has_expiry, rf->expires_at);
	rf->refreshable = has_string(metadata, "refresh_token");
	return metadata;
}

/* ---------------------------------------------------------------------------
 * Credentials claimed by this transaction: only those can be recorded.
 */

static List *claimed = NIL;		/* pg_uuid_t *, in TopTransactionContext */

static void
claimed_forget(XactEvent event, void *arg)
{
	if (xact_event_ends(event))
		claimed = NIL;			/* its memory goes with the transaction's */
}

void
refresh_init(void)
{
	RegisterXactCallback(claimed_forget, NULL);
}

static void
claimed_add(const pg_uuid_t *id)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	pg_uuid_t  *copy = palloc(sizeof(pg_uuid_t));

	*copy = *id;
	claimed = lappend(claimed, copy);
	MemoryContextSwitchTo(old);
}

/*
 * Whether this transaction claimed id and has not recorded it yet; forget:
 * it is recorded (an error before that keeps it, so a savepoint's rollback
 * lets the refresher record a failure instead).
 */
static bool
claimed_find(const pg_uuid_t *id, bool forget)
{
	ListCell   *lc;

	foreach(lc, claimed)
	{
		if (memcmp(lfirst(lc), id, sizeof(pg_uuid_t)) == 0)
		{
			if (forget)
				claimed = foreach_delete_current(claimed, lc);
			return true;
		}
	}
	return false;
}

/* ---------------------------------------------------------------------------
 * Back-off
 */

/* Exponential from BACKOFF_BASE, capped, times a random 0.5..1; never before Retry-After. */
static TimestampTz
backoff_until(TimestampTz now, int failures, int32 retry_after)
{
	double		base = Min(BACKOFF_BASE * pow(2.0, Min(failures - 1, 20)), BACKOFF_MAX);
	double		delay = base * (0.5 + randombytes_uniform(1000001) / 2000000.0);

	if (retry_after > 0)
		delay = Max(delay, (double) Min(retry_after, RETRY_AFTER_MAX));
	return now + (int64) (delay * USECS_PER_SEC);
}

/* An error code for the refresh_error column: [a-z0-9_]{1,64}, other characters as '_'. */
static char *
error_code(const char *prefix, const char *s, int len)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoString(&b, prefix);
	for (int i = 0; i < len && b.len < 64; i++)
	{
		char		c = s[i] >= 'A' && s[i] <= 'Z' ? s[i] + ('a' - 'A') : s[i];

		appendStringInfoChar(&b, (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_');
	}
	if (b.len == 0)
		appendStringInfoString(&b, "other");
	return b.data;
}

/*
 * A refresh of id ended (NOTIFY at commit, nothing if it rolls back):
 * "<credential id> <outcome>[ <error code>]". No token, no org, no provider.
 */
static void
notify_done(const pg_uuid_t *id, const char *outcome, const char *error)
{
	char	   *uuid = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));

	Async_Notify(DONE_CHANNEL, psprintf("%s %s%s%s", uuid, outcome, error ? " " : "", error ? error : ""));
}

/* ---------------------------------------------------------------------------
 * Claiming
 */

/* A string column of the claim's row. */
static char *
claim_text(SPITupleTable *t, uint64 i, int column)
{
	bool		isnull;
	Datum		d = SPI_getbinval(t->vals[i], t->tupdesc, column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Opens the OAuth client's secret of a claimed row; the caller wipes it. */
static char *
open_client_secret(SPITupleTable *t, uint64 i, const Row *row, size_t *len)
{
	bool		isnull;
	char	   *meta;
	pg_uuid_t  *id = DatumGetUUIDP(SPI_getbinval(t->vals[i], t->tupdesc, Q_CLIENT_ID, &isnull));
	RowIdentity r = oauth_client_identity(id, DatumGetUUIDP(col(row, C_ORG, &isnull)),
										  DatumGetTextPP(col(row, C_PROVIDER, &isnull)),
										  DatumGetTextPP(SPI_getbinval(t->vals[i], t->tupdesc,
																	   Q_TOKEN_URL, &isnull)),
										  claim_text(t, i, Q_CLIENT_NAME),
										  claim_text(t, i, Q_AUTH_METHOD), claim_text(t, i, Q_SCOPES));
	int32		kv = DatumGetInt32(SPI_getbinval(t->vals[i], t->tupdesc, Q_CLIENT_KEY_VERSION, &isnull));

	return open_credential(&r, kv, DatumGetByteaPP(SPI_getbinval(t->vals[i], t->tupdesc,
																 Q_CLIENT_SECRET, &isnull)),
						   len, &meta);
}

/* The refresh token in a credential's secret metadata, or NULL. */
static char *
refresh_token_of(const char *secret_metadata)
{
	Jsonb	   *secret = parse_jsonb(secret_metadata);
	JsonbValue	v;

	if (!getKeyJsonValueFromContainer(&secret->root, "refresh_token", 13, &v) ||
		v.type != jbvString || v.val.string.len == 0)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* Puts one claimed row into the result, its secrets opened (XX001 if they do not open). */
static void
claim_emit(ReturnSetInfo *rsinfo, SPITupleTable *t, uint64 i)
{
	Row			row = row_of(t, i);
	char	   *plain_metadata = row_plain_metadata(&row);
	size_t		tlen;
	size_t		slen;
	char	   *meta;
	char	   *token = open_row(&row, plain_metadata, &tlen, &meta);
	char	   *refresh_token = refresh_token_of(meta);
	char	   *secret = open_client_secret(t, i, &row, &slen);
	Datum		values[R_COUNT];
	bool		nulls[R_COUNT] = {0};
	bool		isnull;

	values[R_CREDENTIAL] = col(&row, C_ID, &isnull);
	values[R_ORG] = col(&row, C_ORG, &isnull);
	values[R_PROVIDER] = col(&row, C_PROVIDER, &isnull);
	values[R_TOKEN_URL] = SPI_getbinval(t->vals[i], t->tupdesc, Q_TOKEN_URL, &isnull);
	values[R_CLIENT_ID] = SPI_getbinval(t->vals[i], t->tupdesc, Q_CLIENT_NAME, &isnull);
	values[R_CLIENT_SECRET] = CStringGetTextDatum(secret);
	values[R_AUTH_METHOD] = SPI_getbinval(t->vals[i], t->tupdesc, Q_AUTH_METHOD, &isnull);
	values[R_SCOPES] = SPI_getbinval(t->vals[i], t->tupdesc, Q_SCOPES, &nulls[R_SCOPES]);
	values[R_REFRESH_TOKEN] = refresh_token ? CStringGetTextDatum(refresh_token) : (Datum) 0;
	nulls[R_REFRESH_TOKEN] = refresh_token == NULL;
	values[R_FAILURES] = SPI_getbinval(t->vals[i], t->tupdesc, Q_FAILURES, &isnull);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	sodium_memzero(token, tlen);
	sodium_memzero(secret, slen);
	if (refresh_token)
		sodium_memzero(refresh_token, strlen(refresh_token));
	claimed_add(DatumGetUUIDP(values[R_CREDENTIAL]));
}

/* Backs a credential off (failures + 1), with an error code. */
static TimestampTz
back_off(const pg_uuid_t *id, int failures, int32 retry_after, const char *error)
{
	TimestampTz until = backoff_until(GetCurrentTimestamp(), failures, retry_after);
	Datum		args[4] = {UUIDPGetDatum(id), Int32GetDatum(failures), TimestampTzGetDatum(until),
	CStringGetTextDatum(error)};

	stmt_run(S_REFRESH_BACKOFF, args, NULL, false, 0);
	return until;
}

/*
 * claim_emit, but a row whose secrets do not open (XX001: altered outside
 * the extension, or its key is gone) backs off instead of failing the whole
 * claim, so one bad row cannot stop every refresh. Other errors are raised.
 */
static void
claim_emit_or_back_off(ReturnSetInfo *rsinfo, SPITupleTable *t, uint64 i)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool failed = false;
	bool		isnull;
	Row			row = row_of(t, i);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		claim_emit(rsinfo, t, i);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_DATA_CORRUPTED)
			ReThrowError(edata);
		failed = true;
	}
	PG_END_TRY();
	if (failed)
	{
		back_off(DatumGetUUIDP(col(&row, C_ID, &isnull)),
				 DatumGetInt32(SPI_getbinval(t->vals[i], t->tupdesc, Q_FAILURES, &isnull)) + 1,
				 0, "undecryptable");
		notify_done(DatumGetUUIDP(col(&row, C_ID, &isnull)), "retry", "undecryptable");
	}
}

PG_FUNCTION_INFO_V1(sdr_creds_refresh_claim);
Datum
sdr_creds_refresh_claim(PG_FUNCTION_ARGS)
{
	int32		window = PG_ARGISNULL(0) ? 300 : PG_GETARG_INT32(0);
	int32		batch = PG_ARGISNULL(1) ? 1 : PG_GETARG_INT32(1);
	OwnerContext oc;
	Datum		args[2];
	uint64		n;
	SPITupleTable *t;

	if (window < 0 || window > WINDOW_MAX)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("window_seconds must be between 0 and %d", WINDOW_MAX)));
	if (batch < 1 || batch > CLAIM_MAX)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("batch_size must be between 1 and %d", CLAIM_MAX)));
	if (!IsTransactionBlock())
		ereport(ERROR, (errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
						errmsg("refresh_claim() must be called inside a transaction block"),
						errhint("The claim lasts until the transaction ends: BEGIN, claim, refresh, "
								"refresh_record(), COMMIT.")));
	srf_begin(fcinfo);
	owner_enter(fcinfo, &oc);
	args[0] = Int32GetDatum(window);
	args[1] = Int32GetDatum(batch);
	SPI_connect();
	n = stmt_run(S_REFRESH_CLAIM, args, NULL, false, 0);
	t = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
		claim_emit_or_back_off((ReturnSetInfo *) fcinfo->resultinfo, t, i);
	SPI_finish();
	owner_leave(&oc);
	return (Datum) 0;
}

/* ---------------------------------------------------------------------------
 * Recording the token endpoint's answer
 */

typedef enum
{
	OUT_REFRESHED, OUT_NEEDS_REAUTHORIZATION, OUT_RETRY
} Outcome;

static const char *const outcome_names[] = {"refreshed", NEEDS_REAUTHORIZATION, "retry"};

/* The answer, classified; tokens palloc'd (wiped when stored). */
typedef struct Answer
{
	Outcome		outcome;
	const char *error;			/* refresh_error, or NULL */
	char	   *access_token;	/* refreshed */
	char	   *refresh_token;	/* refreshed, when the provider rotated it; else NULL */
	bool		has_expiry;
	int64		expires_in;
} Answer;

/* What refresh_record() reports. */
typedef struct Recorded
{
	bool		has_expiry;
	TimestampTz expires_at;
	bool		has_retry;
	TimestampTz retry_at;
} Recorded;

/* A string field of the answer, 1..max bytes, palloc'd; NULL if absent or not one. */
static char *
answer_string(Jsonb *j, const char *key, int max)
{
	JsonbValue	v;

	if (!getKeyJsonValueFromContainer(&j->root, key, strlen(key), &v) ||
		v.type != jbvString || v.val.string.len < 1 || v.val.string.len > max)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* A 2xx answer (RFC 6749 section 5.1): access_token, and maybe refresh_token and expires_in. */
static void
classify_success(Answer *a, Jsonb *j)
{
	JsonbValue	v;

	a->error = "malformed_response";
	if (j == NULL || (a->access_token = answer_string(j, "access_token", ACCESS_TOKEN_MAX)) == NULL)
		return;
	if (getKeyJsonValueFromContainer(&j->root, "refresh_token", 13, &v) && v.type != jbvNull &&
		(a->refresh_token = answer_string(j, "refresh_token", ACCESS_TOKEN_MAX)) == NULL)
		return;
	if (getKeyJsonValueFromContainer(&j->root, "expires_in", 10, &v) && v.type != jbvNull)
	{
		if (!json_seconds(&v, 0, EXPIRES_IN_MAX, &a->expires_in))
			return;
		a->has_expiry = true;
	}
	a->outcome = OUT_REFRESHED;
	a->error = NULL;
}

/*
 * What an answer means: 2xx with an access token: refreshed; 400 or 401 with
 * error invalid_grant: the grant is gone; anything else, a transport error
 * (error) or no answer: retry later.
 */
static void
classify(Answer *a, bool has_status, int32 status, bytea *body, text *error)
{
	Jsonb	   *j = NULL;
	char	   *code;
	const char *b = body ? VARDATA_ANY(body) : NULL;
	int			blen = body ? VARSIZE_ANY_EXHDR(body) : 0;

	memset(a, 0, sizeof(*a));
	a->outcome = OUT_RETRY;
	if (error != NULL || !has_status)
	{
		a->error = error ? error_code("", VARDATA_ANY(error), VARSIZE_ANY_EXHDR(error)) : "no_response";
		return;
	}
	/* the body as sent: JSON only if it is text in the database encoding */
	if (body != NULL && blen <= BODY_MAX && memchr(b, '\0', blen) == NULL && pg_verifymbstr(b, blen, true))
		j = try_parse_jsonb(pnstrdup(b, blen));
	if (j != NULL && !JB_ROOT_IS_OBJECT(j))
		j = NULL;
	if (status >= 200 && status < 300)
		classify_success(a, j);
	else if ((status == 400 || status == 401) && j != NULL && (code = answer_string(j, "error", 64)) != NULL)
	{
		if (strcmp(code, "invalid_grant") == 0)
			a->outcome = OUT_NEEDS_REAUTHORIZATION;
		a->error = error_code(strcmp(code, "invalid_grant") == 0 ? "" : "oauth_", code, strlen(code));
	}
	else
		a->error = status >= 100 && status <= 599 ? psprintf("http_%d", status) : "http_invalid";
}

/* The credential's new plain metadata and secrets after a, sealed; fills in r. */
static void
store_answer(const Row *row, const Answer *a, int failures, Recorded *r)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		isnull;
	bool		refreshed = a->outcome == OUT_REFRESHED;
	Jsonb	   *plain = DatumGetJsonbP(col(row, C_METADATA, &isnull));
	char	   *plain_text = row_plain_metadata(row);
	size_t		len;
	char	   *meta;
	char	   *token = open_row(row, plain_text, &len, &meta);
	Jsonb	   *secret = parse_jsonb(meta);
	JsonbValue	v = {.type = jbvString};
	RowIdentity id;
	char	   *secret_text;
	int32		kv;
	Datum		args[10];
	char		nulls[10] = "          ";

	if (refreshed && a->refresh_token)
	{
		v.val.string.val = a->refresh_token;
		v.val.string.len = strlen(a->refresh_token);
		secret = metadata_set(secret, "refresh_token", &v);
	}
	if (refreshed)
	{
		r->has_expiry = a->has_expiry;
		r->expires_at = now + a->expires_in * USECS_PER_SEC;
		plain = metadata_set(with_expiry(plain, r->has_expiry, r->expires_at), "refresh_status", NULL);
		r->has_retry = true;	/* at most one scheduled refresh a minute */
		r->retry_at = now + 60 * USECS_PER_SEC;
	}
	else
	{
		v.val.string.val = NEEDS_REAUTHORIZATION;
		v.val.string.len = strlen(NEEDS_REAUTHORIZATION);
		plain = metadata_set(plain, "refresh_status", &v);
	}
	id = row_identity(row, jsonb_text(plain));
	id.format = SEAL_FORMAT_2;
	secret_text = jsonb_text(secret);
	args[0] = col(row, C_ID, &isnull);
	args[1] = JsonbPGetDatum(plain);
	args[2] = PointerGetDatum(seal_credential(&id, refreshed ? a->access_token : token, secret_text, &kv));
	args[3] = Int32GetDatum(kv);
	args[4] = TimestampTzGetDatum(now);
	args[5] = TimestampTzGetDatum(r->expires_at);
	nulls[5] = r->has_expiry ? ' ' : 'n';
	args[6] = BoolGetDatum(refreshed);
	args[7] = Int32GetDatum(refreshed ? 0 : failures + 1);
	args[8] = TimestampTzGetDatum(r->retry_at);
	nulls[8] = r->has_retry ? ' ' : 'n';
	args[9] = refreshed ? (Datum) 0 : CStringGetTextDatum(a->error);
	nulls[9] = refreshed ? 'n' : ' ';
	stmt_run(S_REFRESH_STORE, args, nulls, false, 0);
	sodium_memzero(token, len);
	sodium_memzero(secret_text, strlen(secret_text));
}

/* Locks the claimed row (it is this transaction's already) and stores the answer. */
static void
record_answer(const pg_uuid_t *id, const Answer *a, int32 retry_after, Recorded *r)
{
	Datum		arg = UUIDPGetDatum(id);
	bool		isnull;
	Row			row;
	int32		failures;
	Datum		expires_at;
	text	   *provider;

	if (stmt_run(S_REFRESH_LOCK, &arg, NULL, false, 1) != 1)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("the claimed credential no longer exists")));
	row = row_of(SPI_tuptable, 0);
	failures = Min(DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   C_SEAL_FORMAT + 1, &isnull)), 1000000);
	expires_at = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, C_SEAL_FORMAT + 2,
							   &isnull);
	r->has_expiry = !isnull;
	r->expires_at = isnull ? 0 : DatumGetTimestampTz(expires_at);
	provider = DatumGetTextPP(col(&row, C_PROVIDER, &isnull));
	monitor_call_org(DatumGetUUIDP(col(&row, C_ORG, &isnull)));
	monitor_call_provider(VARDATA_ANY(provider), VARSIZE_ANY_EXHDR(provider), true);
	if (a->outcome == OUT_RETRY)
	{
		r->has_retry = true;
		r->retry_at = back_off(id, failures + 1, retry_after, a->error);
	}
	else
		store_answer(&row, a, failures, r);
}

static void
answer_wipe(Answer *a)
{
	if (a->access_token)
		sodium_memzero(a->access_token, strlen(a->access_token));
	if (a->refresh_token)
		sodium_memzero(a->refresh_token, strlen(a->refresh_token));
}

PG_FUNCTION_INFO_V1(sdr_creds_refresh_record);
Datum
sdr_creds_refresh_record(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	Answer		a;
	Recorded	r = {0};
	OwnerContext oc;
	TupleDesc	td;
	Datum		values[5];
	bool		nulls[5] = {0};

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("credential_id must not be null")));
	id = PG_GETARG_UUID_P(0);
	if (!claimed_find(id, false))
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("credential %s was not claimed by refresh_claim() in this transaction",
							   DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))))));
	monitor_call_begin(ACT_REFRESH);
	monitor_call_as_admin();
	monitor_call_credential(id);
	classify(&a, !PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1),
			 PG_ARGISNULL(2) ? NULL : PG_GETARG_BYTEA_PP(2), PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4));
	owner_enter(fcinfo, &oc);
	SPI_connect();
	record_answer(id, &a, PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3), &r);
	SPI_finish();
	owner_leave(&oc);
	answer_wipe(&a);
	claimed_find(id, true);
	notify_done(id, outcome_names[a.outcome], a.error);
	monitor_call_detail("outcome", outcome_names[a.outcome]);
	monitor_call_end();

	if (get_call_result_type(fcinfo, NULL, &td) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "sdr_creds: function must return a composite type");
	values[0] = CStringGetTextDatum(outcome_names[a.outcome]);
	values[1] = BoolGetDatum(a.refresh_token != NULL);
	values[2] = TimestampTzGetDatum(r.expires_at);
	nulls[2] = !r.has_expiry;
	values[3] = TimestampTzGetDatum(r.retry_at);
	nulls[3] = !r.has_retry;
	values[4] = a.error ? CStringGetTextDatum(a.error) : (Datum) 0;
	nulls[4] = a.error == NULL;
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(td), values, nulls));
}

/* ---------------------------------------------------------------------------
 * On demand
 */

PG_FUNCTION_INFO_V1(sdr_creds_request_refresh);
Datum
sdr_creds_request_refresh(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	pg_uuid_t	org;
	OwnerContext oc;
	Datum		args[2];
	bool		isnull;
	bool		in_progress;
	StringInfoData out;

	api_enter(fcinfo, ACT_REQUEST_REFRESH, &oc, &org);
	id = required_id(fcinfo);
	SPI_connect();
	fetch_owned(id, &org);
	args[0] = UUIDPGetDatum(id);
	in_progress = stmt_run(S_REFRESH_REQUEST_LOCK, args, NULL, false, 1) == 0;
	if (!in_progress)
	{
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			SDR_ERROR("409", "Integration credentials %s cannot be refreshed: no refresh token, "
					  "or it needs re-authorization", DatumGetCString(DirectFunctionCall1(uuid_out, args[0])));
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
			SDR_ERROR("409", "Integration credentials %s cannot be refreshed: no OAuth client for "
					  "its provider", DatumGetCString(DirectFunctionCall1(uuid_out, args[0])));
		args[1] = TimestampTzGetDatum(GetCurrentTimestamp());
		stmt_run(S_REFRESH_REQUEST_SET, args, NULL, false, 0);
		Async_Notify(NOTIFY_CHANNEL, NULL);
	}
	SPI_finish();
	api_leave(&oc);
	initStringInfo(&out);
	appendStringInfoString(&out, "{\"id\": ");
	append_uuid(&out, id);
	appendStringInfo(&out, ", \"refresh\": \"%s\"}", in_progress ? "in_progress" : "requested");
	PG_RETURN_TEXT_P(json_result(&out));
}
