/*
 * rows.c: row access for the SQL-callable functions: a credentials row taken
 * apart, what its secrets are bound to and opening them, a credential by id
 * for its org, and the checks of a provider name and of an id argument. The
 * binding of an OAuth client's secret is here too, beside a credential's.
 */
#include "sdr_creds.h"

#include "json.h"
#include "mb/pg_wchar.h"
#include "monitor.h"
#include "rows.h"
#include "statements.h"
#include "utils/builtins.h"
#include "utils/json.h"

#define PROVIDER_ECHO_MAX 256

/* ^[a-z0-9][a-z0-9_.-]{0,63}$ */
static bool
provider_is_valid(const char *p, size_t len)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = p[i];
		bool		alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return false;
	}
	return true;
}

/* Whether provider is a valid name; tells the call in progress which provider it asks for. */
bool
provider_checked(text *provider)
{
	const char *p = VARDATA_ANY(provider);
	size_t		len = VARSIZE_ANY_EXHDR(provider);
	bool		valid = provider_is_valid(p, len);

	monitor_call_provider(p, len, valid);
	return valid;
}

/*
 * PT404 for a provider, quoted as given: no valid provider is over 64 bytes,
 * so a longer one is cut (at a character boundary) to keep errors and logs
 * small; text that is not valid in the database encoding is PT422.
 */
void
provider_not_found(text *provider)
{
	const char *p = VARDATA_ANY(provider);
	int			len = VARSIZE_ANY_EXHDR(provider);
	int			shown;

	if (!pg_verifymbstr(p, len, true))
		SDR_ERROR("422", "provider must be valid text in the database encoding");
	shown = pg_mbcliplen(p, len, PROVIDER_ECHO_MAX);
	SDR_ERROR("404", "Integration credentials for provider '%.*s%s' not found",
			  shown, p, shown < len ? "..." : "");
}

/* A tuple's first columns (up to seal_format), taken apart. */
void
row_load(Row *r, HeapTuple tup, TupleDesc desc)
{
	r->ncolumns = Min(desc->natts, ROW_MAX_COLUMNS);
	if (desc->natts <= ROW_MAX_COLUMNS)
		heap_deform_tuple(tup, desc, r->values, r->nulls);
	else
		for (int i = 0; i < r->ncolumns; i++)
			r->values[i] = heap_getattr(tup, i + 1, desc, &r->nulls[i]);
}

Row
row_of(SPITupleTable *t, uint64 i)
{
	Row			r;

	row_load(&r, t->vals[i], t->tupdesc);
	return r;
}

Datum
col(const Row *r, int column, bool *isnull)
{
	*isnull = r->nulls[column - 1];
	return r->values[column - 1];
}

/* What a stored row's secrets are bound to; plain_metadata is its plain metadata text. */
RowIdentity
row_identity(const Row *row, const char *plain_metadata)
{
	bool		isnull;
	bool		no_dsn;
	Datum		dsn = col(row, C_DSN, &no_dsn);
	text	   *provider = DatumGetTextPP(col(row, C_PROVIDER, &isnull));
	RowIdentity r = {
		.format = SEAL_FORMAT_1,
		.id = DatumGetUUIDP(col(row, C_ID, &isnull)),
		.org = DatumGetUUIDP(col(row, C_ORG, &isnull)),
		.provider = VARDATA_ANY(provider),
		.provider_len = VARSIZE_ANY_EXHDR(provider),
		.dsn = no_dsn ? NULL : DatumGetTextPP(dsn),
		.plain_metadata = plain_metadata,
	};

	if (row->ncolumns >= C_SEAL_FORMAT)
		r.format = DatumGetInt16(col(row, C_SEAL_FORMAT, &isnull));
	return r;
}

/* Opens a row's secrets: returns the plaintext (the token), sets *meta to its secret metadata. */
char *
open_row(const Row *row, const char *plain_metadata, size_t *len, char **meta)
{
	bool		isnull;
	RowIdentity r = row_identity(row, plain_metadata);

	return open_credential(&r, DatumGetInt32(col(row, C_KEY_VERSION, &isnull)),
						   DatumGetByteaPP(col(row, C_SECRETS, &isnull)), len, meta);
}

/* The row's plain metadata as JSON text. */
char *
row_plain_metadata(const Row *row)
{
	bool		isnull;

	return jsonb_text(DatumGetJsonbP(col(row, C_METADATA, &isnull)));
}

void
id_not_found(pg_uuid_t *id)
{
	SDR_ERROR("404", "Integration credentials %s not found",
			  DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))));
}

/* The credential id argument (get, delete); PT422 if null. */
pg_uuid_t *
required_id(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		SDR_ERROR("422", "id must not be null");
	monitor_call_credential(PG_GETARG_UUID_P(0));
	return PG_GETARG_UUID_P(0);
}

/* Fetches a row by id into SPI_tuptable; 404 if none, 403 if another org's. */
void
fetch_owned(pg_uuid_t *id, const pg_uuid_t *org)
{
	Datum		arg = UUIDPGetDatum(id);
	bool		isnull;
	Row			r;

	if (stmt_run(S_CRED_BY_ID, &arg, NULL, true, 1) == 0)
		id_not_found(id);
	r = row_of(SPI_tuptable, 0);
	if (memcmp(DatumGetUUIDP(col(&r, C_ORG, &isnull)), org, UUID_LEN) != 0)
		SDR_ERROR("403", MSG_FORBIDDEN);
}

/*
 * What an OAuth client's secret is bound to: its row (id, org, provider),
 * token URL, client id, auth method and scopes.
 */
RowIdentity
oauth_client_identity(const pg_uuid_t *id, const pg_uuid_t *org, text *provider, text *token_url,
					  const char *client_id, const char *auth_method, const char *scopes)
{
	StringInfoData b;
	RowIdentity r = {SEAL_FORMAT_OAUTH_CLIENT, id, org, VARDATA_ANY(provider),
	VARSIZE_ANY_EXHDR(provider), token_url, NULL};

	/* a JSON array: its escaping keeps the fields apart */
	initStringInfo(&b);
	appendStringInfoChar(&b, '[');
	escape_json(&b, client_id);
	appendStringInfoString(&b, ", ");
	escape_json(&b, auth_method);
	appendStringInfoString(&b, ", ");
	if (scopes)
		escape_json(&b, scopes);
	else
		appendStringInfoString(&b, "null");
	appendStringInfoChar(&b, ']');
	r.plain_metadata = b.data;
	return r;
}

