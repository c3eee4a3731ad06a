/*
 * json.c: writes the credential object (fields in the API's order, RFC 3339
 * UTC timestamps to the second), and parses and prints jsonb with
 * PostgreSQL's own code.
 */
#include "json.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

void
append_uuid(StringInfo out, const pg_uuid_t *uuid)
{
	static const char hex[] = "0123456789abcdef";
	char		buf[38];
	int			n = 0;

	buf[n++] = '"';
	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[n++] = '-';
		buf[n++] = hex[uuid->data[i] >> 4];
		buf[n++] = hex[uuid->data[i] & 0x0f];
	}
	buf[n++] = '"';
	appendBinaryStringInfo(out, buf, n);
}

void
append_timestamp(StringInfo out, TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(t) || timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						errmsg("timestamp out of range")));
	if (tm.tm_year < 1 || tm.tm_year > 9999)
		appendStringInfo(out, "\"%04d-%02d-%02dT%02d:%02d:%02dZ\"",
						 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
	{
		char		buf[] = "\"YYYY-MM-DDTHH:MM:SSZ\"";
		int			fields[6] = {tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
		int			at[6] = {1, 6, 9, 12, 15, 18};

		for (int f = 0; f < 6; f++)
			for (int d = (f == 0 ? 3 : 1), v = fields[f]; d >= 0; d--, v /= 10)
				buf[at[f] + d] = '0' + v % 10;
		appendBinaryStringInfo(out, buf, sizeof(buf) - 1);
	}
}

void
append_json_string(StringInfo out, const char *s, int len)
{
	char	   *z = pnstrdup(s, len);

	escape_json(out, z);
	pfree(z);
}

static void
append_text(StringInfo out, text *t)
{
	append_json_string(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/*
 * The plain and secret parts of metadata (disjoint objects, as JsonbToCString
 * writes them) as one object: plain keys, then secret keys.
 */
static void
append_metadata(StringInfo out, const char *plain, const char *secret)
{
	size_t		plen = strlen(plain);

	if (secret == NULL || strcmp(secret, "{}") == 0)
		appendBinaryStringInfo(out, plain, plen);
	else if (strcmp(plain, "{}") == 0)
		appendStringInfoString(out, secret);
	else
	{
		Assert(plain[plen - 1] == '}' && secret[0] == '{');
		appendBinaryStringInfo(out, plain, plen - 1);
		appendStringInfoString(out, ", ");
		appendStringInfoString(out, secret + 1);
	}
}

void
append_credential_json(StringInfo out, const Credential *c)
{
	appendStringInfoString(out, "{\"id\": ");
	append_uuid(out, c->id);
	appendStringInfoString(out, ", \"org_id\": ");
	append_uuid(out, c->org_id);
	appendStringInfoString(out, ", \"provider\": ");
	append_text(out, c->provider);
	appendStringInfoString(out, ", \"dsn\": ");
	if (c->dsn)
		append_text(out, c->dsn);
	else
		appendStringInfoString(out, "null");
	appendStringInfoString(out, ", \"access_token\": ");
	escape_json(out, c->access_token);
	appendStringInfoString(out, ", \"metadata\": ");
	append_metadata(out, c->plain_metadata, c->secret_metadata);
	appendStringInfoString(out, ", \"created_at\": ");
	append_timestamp(out, c->created_at);
	appendStringInfoString(out, ", \"updated_at\": ");
	append_timestamp(out, c->updated_at);
	appendStringInfoChar(out, '}');
}

char *
jsonb_text(Jsonb *j)
{
	return JsonbToCString(NULL, &j->root, VARSIZE(j));
}

Jsonb *
parse_jsonb(const char *s)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
}

/*
 * Untrusted text as jsonb, or NULL if it is not valid JSON. The parser holds
 * no resources, so its error can be caught and dropped without a subtransaction.
 */
Jsonb *
try_parse_jsonb(const char *s)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *volatile j = NULL;

	PG_TRY();
	{
		j = parse_jsonb(s);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		j = NULL;
	}
	PG_END_TRY();
	return j;
}
