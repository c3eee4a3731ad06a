/*
 * jwks.c: one fetch of an issuer's JWKS (GET, no credentials sent), then
 * one statement that compares it with the stored key set
 * (sdr_creds.list_issuers()) and calls sdr_creds.set_issuer() only when it
 * changed, passing the issuer's audience and org claim back as stored: the
 * DBA configures those, the fetcher only keeps the keys current. An issuer
 * not configured yet is skipped. On any failure the stored keys stay as
 * they are. The log line has no key.
 */
#define _GNU_SOURCE
#include "jwks.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "log.h"

/*
 * 'stored', 'unchanged' or 'not_configured'. jsonb equality ignores
 * formatting and member order. CASE evaluates set_issuer() only when reached.
 */
static const char *const store_sql =
"WITH i AS (SELECT jwks, audience, org_claim FROM sdr_creds.list_issuers() WHERE issuer = $1)"
" SELECT CASE WHEN NOT EXISTS (SELECT FROM i) THEN 'not_configured'"
" WHEN (SELECT jwks FROM i) = $2::jsonb THEN 'unchanged'"
" ELSE (SELECT 'stored' FROM i, sdr_creds.set_issuer($1, $2::jsonb, i.audience, i.org_claim)) END";

/* What to say for a statement that failed: a code, and a hint for the operator. */
static const char *
store_failure(PGresult *r, const char **hint)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

	*hint = primary ? primary : "";
	if (state && strcmp(state, "42501") == 0)
	{
		*hint = "the refresher's role needs EXECUTE on sdr_creds.list_issuers() and "
			"sdr_creds.set_issuer(text, jsonb, text, text) (docs/refresh.md)";
		return "permission_denied";
	}
	if (state && strcmp(state, "42883") == 0)
	{
		*hint = "sdr_creds 1.2 or later is needed (ALTER EXTENSION sdr_creds UPDATE)";
		return "no_issuers";
	}
	return "rejected";			/* the key set itself (the database's message names no key) */
}

/* Compares and stores one fetched key set; the outcome, or NULL with *error and *hint. */
static const char *
store(PGconn *c, const char *issuer, const HttpAnswer *a, const char **error, const char **hint,
	  char *buf, size_t size)
{
	const char *values[2] = {issuer, a->body};
	PGresult   *r;
	const char *outcome = NULL;

	if (a->body == NULL || memchr(a->body, '\0', a->len) != NULL)
	{
		*error = "malformed_response";
		*hint = "";
		return NULL;
	}
	r = PQexecParams(c, store_sql, 2, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		outcome = snprintf(buf, size, "%s", PQgetvalue(r, 0, 0)) > 0 ? buf : NULL;
	else
	{
		*error = store_failure(r, hint);
		snprintf(buf, size, "%s", *hint);
		*hint = buf;
	}
	PQclear(r);
	return outcome;
}

/* Seconds until the next fetch: max-age within bounds, or the default. */
static long
next_fetch(const HttpAnswer *a)
{
	if (a->max_age < 0)
		return JWKS_DEFAULT_SECS;
	return a->max_age < JWKS_MIN_SECS ? JWKS_MIN_SECS :
		a->max_age > JWKS_MAX_SECS ? JWKS_MAX_SECS : a->max_age;
}

/* Fetches one source's key set, stores it if it changed, logs one line. */
static void
refresh_source(PGconn *c, const Options *o, JwksSource *s)
{
	CURL	   *h = curl_easy_init();
	struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/jwk-set+json, application/json");
	HttpRequest rq = {.url = s->url, .headers = headers, .max_response = JWKS_MAX_BYTES};
	HttpAnswer	a = {.retry_after = -1, .max_age = -1, .error = "request_failed"};
	const char *outcome = NULL;
	const char *hint = "";
	char		http[24] = "-";
	char		code[32];
	char		buf[512];
	double		start = now_ms();
	long		next = JWKS_RETRY_SECS;

	if (h && headers)
		http_send(h, &rq, o, &a);
	if (a.status > 0)
		snprintf(http, sizeof(http), "%ld", a.status);
	if (a.error && a.refused != ADDRESS_PUBLIC)
		hint = http_refusal(&a, "JWKS URL", buf, sizeof(buf));
	else if (a.error == NULL && a.status != 200)
	{
		snprintf(code, sizeof(code), "http_%ld", a.status);
		a.error = code;
	}
	else if (a.error == NULL && (outcome = store(c, s->issuer, &a, &a.error, &hint, buf, sizeof(buf))))
		next = next_fetch(&a);
	if (outcome && strcmp(outcome, "not_configured") == 0)
	{
		hint = "configure it first: SELECT sdr_creds.set_issuer(issuer, jwks, audience, org_claim)";
		next = JWKS_MIN_SECS;
	}
	rlog("jwks issuer=%s http=%s outcome=%s%s%s next=%lds %.0fms%s%s", s->issuer, http,
		 outcome ? outcome : "kept", outcome ? "" : " error=", outcome ? "" : a.error, next,
		 now_ms() - start, *hint ? ": " : "", hint);
	s->due_ms = now_ms() + next * 1000.0;
	http_answer_free(&a);
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
}

long
jwks_refresh_due(PGconn *c, const Options *o)
{
	double		next = -1;

	for (int i = 0; i < o->jwks_count && PQstatus(c) == CONNECTION_OK; i++)
	{
		JwksSource *s = &o->jwks[i];

		if (s->due_ms <= now_ms())
			refresh_source(c, o, s);
		if (next < 0 || s->due_ms < next)
			next = s->due_ms;
	}
	return next < 0 ? -1 : next <= now_ms() ? 0 : (long) (next - now_ms()) + 1;
}
