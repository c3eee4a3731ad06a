/*
 * cycle.c: one refresh, in one transaction: claim a due credential
 * (sdr_creds.refresh_claim: the row stays locked until COMMIT, so no other
 * refresher sends its refresh token meanwhile, and a SIGKILL releases it
 * with the connection), send the request, record the answer
 * (sdr_creds.refresh_record, which parses it and stores the new tokens),
 * commit, and log one line without any token. An answer that could not be
 * stored (no primary reachable: the record or the COMMIT failed) is kept in
 * memory (kept.h) and recorded at the row's next claim instead of a new
 * request, if the row still holds the refresh token that was sent.
 */
#define _GNU_SOURCE
#include "cycle.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kept.h"
#include "log.h"
#include "oauth.h"

static const char *const claim_sql =
"SELECT credential_id, org_id, provider, token_url, client_id, client_secret, auth_method,"
" scopes, refresh_token FROM sdr_creds.refresh_claim($1::integer, 1)";

/* expires_at and retry_at as RFC 3339 UTC, for the log */
static const char *const record_sql =
"SELECT outcome, rotated, pg_catalog.to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
" pg_catalog.to_char(retry_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), refresh_error"
" FROM sdr_creds.refresh_record($1::uuid, $2::integer, $3::bytea, $4::integer, $5::text)";

/* Columns of claim_sql. */
enum
{
	CL_ID, CL_ORG, CL_PROVIDER, CL_TOKEN_URL, CL_CLIENT_ID, CL_SECRET, CL_AUTH, CL_SCOPES,
	CL_REFRESH_TOKEN
};

/* Runs a statement without result rows; false (logged) if it failed. */
static bool
exec_ok(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);
	bool		ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		rlog("database: %s failed: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static const char *
field(PGresult *r, int column)
{
	return PQgetisnull(r, 0, column) ? NULL : PQgetvalue(r, 0, column);
}

/* Overwrites the secrets the claim returned, before its result is freed. */
static void
claim_wipe(PGresult *r)
{
	int			secret[] = {CL_SECRET, CL_REFRESH_TOKEN};

	for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
		explicit_bzero(PQgetvalue(r, 0, secret[i]), PQgetlength(r, 0, secret[i]));
}

/* Sends the refresh request of a claimed row, unless it cannot be sent. */
static void
send_refresh(PGresult *claim, const Options *o, RefreshAnswer *a)
{
	RefreshRequest rq = {
		.token_url = field(claim, CL_TOKEN_URL), .client_id = field(claim, CL_CLIENT_ID),
		.client_secret = field(claim, CL_SECRET), .auth_method = field(claim, CL_AUTH),
		.scopes = field(claim, CL_SCOPES), .refresh_token = field(claim, CL_REFRESH_TOKEN),
	};

	memset(a, 0, sizeof(*a));
	a->retry_after = -1;
	if (rq.refresh_token == NULL)
		a->error = "no_refresh_token";
	else if (!url_allowed(rq.token_url, o->allow_http_loopback))
		a->error = "url_refused";
	else
		oauth_refresh(&rq, o, a);
}

/* refresh_record() with the answer; NULL (logged) if it failed. */
static PGresult *
record(PGconn *c, const char *id, const RefreshAnswer *a)
{
	char		status[24];
	char		retry_after[24];
	const char *values[5] = {id, NULL, a->body, NULL, a->error};
	int			lengths[5] = {0, 0, (int) a->len, 0, 0};
	int			formats[5] = {0, 0, 1, 0, 0};
	PGresult   *r;

	if (a->status > 0)
	{
		snprintf(status, sizeof(status), "%ld", a->status);
		values[1] = status;
	}
	if (a->retry_after >= 0)
	{
		snprintf(retry_after, sizeof(retry_after), "%ld", a->retry_after);
		values[3] = retry_after;
	}
	if (a->body == NULL)
		values[2] = NULL;
	r = PQexecParams(c, record_sql, 5, NULL, values, lengths, formats, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		return r;
	rlog("database: refresh_record failed for credential=%s: %s", id, PQresultErrorMessage(r));
	PQclear(r);
	return NULL;
}

/*
 * Records the answer; if that fails (the database refused it), records a
 * failure instead, so the credential backs off rather than being claimed
 * again at once. A savepoint keeps the claim.
 */
static PGresult *
record_or_fail(PGconn *c, const char *id, const RefreshAnswer *a)
{
	RefreshAnswer failed = {.retry_after = -1, .error = "record_failed"};
	PGresult   *r;

	if (!exec_ok(c, "SAVEPOINT sdr_refresh"))
		return NULL;
	if ((r = record(c, id, a)) != NULL)
		return r;
	if (a->status >= 200 && a->status < 300)
		rlog("refresh credential=%s: the new tokens could not be stored; a rotated refresh token "
			 "is lost and the credential may need re-authorization", id);
	if (!exec_ok(c, "ROLLBACK TO SAVEPOINT sdr_refresh"))
		return NULL;
	return record(c, id, &failed);
}

/* The log line of one refresh (no token, no URL). */
static void
log_refresh(PGresult *claim, const RefreshAnswer *a, PGresult *rec, double ms, bool was_kept)
{
	char		http[24] = "-";
	char		refusal[128] = "";
	const char *outcome = PQgetvalue(rec, 0, 0);
	bool		refreshed = strcmp(outcome, "refreshed") == 0;

	if (a->status > 0)
		snprintf(http, sizeof(http), "%ld", a->status);
	if (a->refused != ADDRESS_PUBLIC && a->error)
	{
		refusal[0] = ' ';
		http_refusal(a, "token URL", refusal + 1, sizeof(refusal) - 1);
	}
	rlog("refresh credential=%s org=%s provider=%s http=%s%s outcome=%s%s%s%s%s %s=%s %.0fms%s",
		 PQgetvalue(claim, 0, CL_ID), PQgetvalue(claim, 0, CL_ORG), PQgetvalue(claim, 0, CL_PROVIDER),
		 http, was_kept ? " (kept answer)" : "", outcome, refreshed ? " rotated=" : "",
		 refreshed ? (strcmp(PQgetvalue(rec, 0, 1), "t") == 0 ? "yes" : "no") : "",
		 PQgetisnull(rec, 0, 4) ? "" : " error=", PQgetvalue(rec, 0, 4),
		 refreshed ? "expires_at" : "retry_at",
		 PQgetisnull(rec, 0, refreshed ? 2 : 3) ? "-" : PQgetvalue(rec, 0, refreshed ? 2 : 3), ms, refusal);
}

/* Claims one due credential (in the open transaction); NULL if none or on error. */
static PGresult *
claim(PGconn *c, const Options *o, bool *failed)
{
	char		window[16];
	const char *values[1] = {window};
	PGresult   *r;

	snprintf(window, sizeof(window), "%d", o->window);
	r = PQexecParams(c, claim_sql, 1, NULL, values, NULL, NULL, 0);
	*failed = PQresultStatus(r) != PGRES_TUPLES_OK;
	if (*failed)
		rlog("database: refresh_claim failed: %s", PQresultErrorMessage(r));
	if (*failed || PQntuples(r) == 0)
	{
		PQclear(r);
		return NULL;
	}
	return r;
}

/*
 * The answer to record for a claimed row: one kept from before (kept.h) if
 * the row still holds the refresh token it answered, else the provider's
 * answer to a request sent now. *was_kept: whether it was kept.
 */
static void
answer_for(PGresult *claim, const Options *o, const unsigned char hash[KEPT_HASH_BYTES],
		   RefreshAnswer *a, bool *was_kept)
{
	*was_kept = kept_take(PQgetvalue(claim, 0, CL_ID), hash, a);
	if (!*was_kept)
		send_refresh(claim, o, a);
}

int
refresh_one(PGconn *c, const Options *o)
{
	PGresult   *cl;
	PGresult   *rec = NULL;
	RefreshAnswer a;
	double		start = now_ms();
	bool		failed;
	bool		was_kept;
	unsigned char hash[KEPT_HASH_BYTES];

	if (!exec_ok(c, "BEGIN ISOLATION LEVEL READ COMMITTED"))
		return -1;
	if ((cl = claim(c, o, &failed)) == NULL)
		return exec_ok(c, failed ? "ROLLBACK" : "COMMIT") && !failed ? 0 : -1;
	kept_hash(field(cl, CL_REFRESH_TOKEN), hash);
	answer_for(cl, o, hash, &a, &was_kept);
	claim_wipe(cl);
	rec = record_or_fail(c, PQgetvalue(cl, 0, CL_ID), &a);
	if (rec == NULL || !exec_ok(c, "COMMIT"))
	{
		/* not stored (the primary went away?): kept for the next claim of the row */
		if (a.status >= 200 && a.status < 300 && a.body != NULL)
		{
			kept_put(PQgetvalue(cl, 0, CL_ID), hash, &a);
			rlog("refresh credential=%s: the provider's answer could not be stored; kept in memory "
				 "until a primary takes it (%zu kept)", PQgetvalue(cl, 0, CL_ID), kept_count());
		}
		http_answer_free(&a);
		explicit_bzero(hash, sizeof(hash));
		exec_ok(c, "ROLLBACK");
		PQclear(rec);
		PQclear(cl);
		return -1;
	}
	http_answer_free(&a);
	explicit_bzero(hash, sizeof(hash));
	log_refresh(cl, &a, rec, now_ms() - start, was_kept);
	PQclear(rec);
	PQclear(cl);
	return 1;
}
