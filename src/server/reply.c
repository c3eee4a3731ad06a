/* A statement's results as the job's reply, and the mapping of SQLSTATEs
 * to HTTP statuses. */
#include "reply.h"
#include "statements.h"
#include "log.h"
#include "../messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
reply_unavailable(struct db_reply *reply)
{
	reply->status = 503;
	reply->retry = true;
	reply->detail = MSG_UNAVAILABLE;
}

static void
internal_error(struct db_reply *reply)
{
	reply->status = 500;
	reply->detail = MSG_INTERNAL;
}

static bool
connection_sqlstate(const char *state)
{
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
		strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* Failures a retry can cure: a cancelled statement (statement_timeout, or a
 * stop that could not wait), a serialization failure, a deadlock. */
static bool
transient_sqlstate(const char *state)
{
	return strcmp(state, "57014") == 0 || strcmp(state, "40001") == 0 ||
		strcmp(state, "40P01") == 0;
}

/* Turns an error result into the reply; sets *broken for connection loss. */
static void
map_error(PGconn *conn, PGresult *res, const char *what, struct db_reply *reply, bool *broken)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state == NULL || connection_sqlstate(state))
	{
		/* no SQLSTATE: libpq's own error, such as a lost connection */
		if (state != NULL || PQstatus(conn) == CONNECTION_BAD)
		{
			log_msg(LOG_ERROR, "%s: database connection lost (SQLSTATE %s)", what, state ?: "none");
			*broken = true;
			reply_unavailable(reply);
			return;
		}
		log_msg(LOG_ERROR, "%s failed: client-side error", what);
	}
	else if (transient_sqlstate(state))
	{
		log_msg(LOG_ERROR, "%s failed: SQLSTATE %s; answered 503, retry", what, state);
		reply_unavailable(reply);
		return;
	}
	else if (state[0] == 'P' && state[1] == 'T' &&
			 state[2] >= '4' && state[2] <= '5' &&
			 state[3] >= '0' && state[3] <= '9' &&
			 state[4] >= '0' && state[4] <= '9' && state[5] == '\0')
	{
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		reply->status = atoi(state + 2);
		reply->retry = reply->status == 503;
		reply->detail = msg ? msg : "";
		reply->res = res;
		return;
	}
	else
		log_msg(LOG_ERROR, "%s failed: SQLSTATE %s", what, state);
	internal_error(reply);
}

/* The call's row as the reply: its JSON value (store: 201 when it created the row). */
static void
reply_with_value(enum stmt_id stmt, PGresult *res, struct db_reply *reply)
{
	if (res == NULL || PQnfields(res) <= COL_VALUE || PQgetisnull(res, 0, COL_VALUE))
	{
		log_msg(LOG_ERROR, "%s returned no value", statement_name(stmt));
		internal_error(reply);
		return;
	}
	reply->status = stmt == STMT_STORE && PQgetvalue(res, 0, COL_CREATED)[0] == 't' ? 201 : 200;
	reply->body = PQgetvalue(res, 0, COL_VALUE);
	reply->body_len = (size_t) PQgetlength(res, 0, COL_VALUE);
	reply->res = res;
}

/* The statement's results as the reply: the org id from its first row, then
 * its error, the call's value, (STMT_NONE) status 0 or (STMT_READY) 200. */
void
reply_from_results(PGconn *conn, enum stmt_id stmt, struct results *r,
				   struct db_reply *reply, bool *broken)
{
	const char *name = statement_name(stmt);

	if (stmt == STMT_READY)
	{
		if (r->error == NULL && r->nrows == 1)
		{
			reply->status = 200;
			return;
		}
		log_msg(LOG_ERROR, "readiness check failed: SQLSTATE %s",
				r->error ? PQresultErrorField(r->error, PG_DIAG_SQLSTATE) ?: "none" : "none");
		reply_unavailable(reply);
		return;
	}
	if (r->nrows > 0 && !PQgetisnull(r->row[0], 0, COL_ORG))
		snprintf(reply->org_id, sizeof reply->org_id, "%s", PQgetvalue(r->row[0], 0, COL_ORG));
	if (r->error != NULL)
		map_error(conn, r->error, name, reply, broken);
	else if (r->nrows == 0)
	{
		log_msg(LOG_ERROR, "%s returned no rows", name);
		internal_error(reply);
	}
	else if (stmt == STMT_NONE)
		reply->status = 0;
	else
		reply_with_value(stmt, r->nrows > 1 ? r->row[1] : NULL, reply);
}
