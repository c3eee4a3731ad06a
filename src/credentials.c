/*
 * credentials.c: the SQL-callable credential functions (store, get by
 * provider, get by id, list, delete) and key rotation.
 *
 * Each call finds its org (require_org), runs the statements of
 * statements.c (get by provider reads the unique index directly), opens or
 * seals the row's secrets (crypto.c) and writes the JSON object once.
 */
#include "sdr_creds.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "auth.h"
#include "credentials.h"
#include "crypto.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "json.h"
#include "keyring.h"
#include "metadata.h"
#include "monitor.h"
#include "redact.h"
#include "refresh.h"
#include "mb/pg_wchar.h"
#include "statements.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#define LIST_MAX 1000
#define DSN_MAX 2048
#define METADATA_MAX 65536
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

static void
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

/* Appends a row as the credential object; list views omit secret metadata. */
static void
append_row(StringInfo out, const Row *row, bool secret_metadata)
{
	bool		isnull;
	Datum		d;
	Credential	c;
	size_t		len;
	char	   *meta;
	char	   *plain_metadata = row_plain_metadata(row);
	char	   *plain = open_row(row, plain_metadata, &len, &meta);

	c.id = DatumGetUUIDP(col(row, C_ID, &isnull));
	c.org_id = DatumGetUUIDP(col(row, C_ORG, &isnull));
	c.provider = DatumGetTextPP(col(row, C_PROVIDER, &isnull));
	d = col(row, C_DSN, &isnull);
	c.dsn = isnull ? NULL : DatumGetTextPP(d);
	c.access_token = plain;
	c.plain_metadata = plain_metadata;
	c.secret_metadata = secret_metadata ? meta : NULL;
	c.created_at = DatumGetTimestampTz(col(row, C_CREATED, &isnull));
	c.updated_at = DatumGetTimestampTz(col(row, C_UPDATED, &isnull));
	append_credential_json(out, &c);
	sodium_memzero(plain, len);
}

text *
json_result(StringInfo out)
{
	return cstring_to_text_with_len(out->data, out->len);
}

/* (created boolean, credential json) and similar two-column results. */
Datum
pair_result(FunctionCallInfo fcinfo, Datum a, Datum b)
{
	TupleDesc	td;
	Datum		values[2] = {a, b};
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &td) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "sdr_creds: function must return a composite type");
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(td), values, nulls));
}

void
id_not_found(pg_uuid_t *id)
{
	SDR_ERROR("404", "Integration credentials %s not found",
			  DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))));
}

/* Checks store's arguments (PT422 on the first bad one); returns the metadata, {} if none. */
static Jsonb *
store_validate(text *provider, text *dsn, text *token, Jsonb *metadata)
{
	if (provider == NULL || !provider_checked(provider))
		SDR_ERROR("422", "provider must match ^[a-z0-9][a-z0-9_.-]{0,63}$");
	if (token == NULL || VARSIZE_ANY_EXHDR(token) == 0)
		SDR_ERROR("422", "access_token must be a non-empty string");
	if (VARSIZE_ANY_EXHDR(token) > ACCESS_TOKEN_MAX)
		SDR_ERROR("422", "access_token must be at most %d bytes", ACCESS_TOKEN_MAX);
	if (dsn != NULL && VARSIZE_ANY_EXHDR(dsn) > DSN_MAX)
		SDR_ERROR("422", "dsn must be at most %d bytes", DSN_MAX);
	if (metadata == NULL)
		return parse_jsonb("{}");
	if (!JB_ROOT_IS_OBJECT(metadata))
		SDR_ERROR("422", "metadata must be a JSON object");
	if (VARSIZE(metadata) > METADATA_MAX)
		SDR_ERROR("422", "metadata must be at most %d bytes", METADATA_MAX);
	return metadata;
}

/*
 * Writes c's row, sealed, and fills in c->id and c->created_at; true if it
 * created the row. The row's id must be known before sealing (it is in the
 * additional data), so an existing row is locked first; a concurrent insert
 * of the same provider is retried as an update.
 */
static bool
store_row(Credential *c, Jsonb *plain, const RefreshFields *rf)
{
	int			format = schema_seal_format();
	Datum		args[10];
	char		nulls[10] = "          ";
	bool		isnull;

	args[8] = TimestampTzGetDatum(rf->expires_at);
	nulls[8] = rf->has_expiry ? ' ' : 'n';
	args[9] = BoolGetDatum(rf->refreshable);

	for (int attempt = 0;; attempt++)
	{
		RowIdentity r = {format, c->id, c->org_id, VARDATA_ANY(c->provider),
		VARSIZE_ANY_EXHDR(c->provider), c->dsn, c->plain_metadata};
		bool		exists;
		int32		kv;

		args[0] = UUIDPGetDatum(c->org_id);
		args[1] = PointerGetDatum(c->provider);
		exists = stmt_run(S_CRED_LOCK, args, NULL, false, 1) == 1;
		if (exists)
		{
			Row			locked = row_of(SPI_tuptable, 0);

			*c->id = *DatumGetUUIDP(col(&locked, 1, &isnull));
			c->created_at = DatumGetTimestampTz(col(&locked, 2, &isnull));
		}
		else if (attempt == 3)
			ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							errmsg("could not store the credential: concurrent updates of the same provider")));
		else
			new_uuid(c->id);
		args[0] = UUIDPGetDatum(c->id);
		args[1] = UUIDPGetDatum(c->org_id);
		args[2] = PointerGetDatum(c->provider);
		args[3] = c->dsn ? PointerGetDatum(c->dsn) : (Datum) 0;
		nulls[3] = c->dsn ? ' ' : 'n';
		args[4] = JsonbPGetDatum(plain);
		args[5] = PointerGetDatum(seal_credential(&r, c->access_token, c->secret_metadata, &kv));
		args[6] = Int32GetDatum(kv);
		args[7] = TimestampTzGetDatum(c->updated_at);
		if (exists)
		{
			stmt_run_for(format, S_CRED_UPDATE, args, nulls, false, 0);
			return false;
		}
		if (stmt_run_for(format, S_CRED_INSERT, args, nulls, false, 0) == 1)
			return true;
	}
}

/* Creates or replaces the org's credential for a provider; (created, credential). */
static Datum
store(FunctionCallInfo fcinfo, pg_uuid_t org, text *provider, text *dsn, text *token, Jsonb *metadata)
{
	pg_uuid_t	id;
	Jsonb	   *plain;
	Jsonb	   *secret;
	char	   *token_str;
	bool		created;
	Credential	c = {.id = &id, .org_id = &org, .provider = provider, .dsn = dsn};
	RefreshFields rf;
	StringInfoData out;

	redact_activity();
	metadata = store_validate(provider, dsn, token, metadata);
	c.created_at = c.updated_at = GetCurrentTimestamp();
	metadata = refresh_fields(metadata, c.updated_at, &rf);
	split_metadata(metadata, &plain, &secret);
	c.plain_metadata = jsonb_text(plain);
	c.secret_metadata = jsonb_text(secret);
	c.access_token = token_str = text_to_cstring(token);

	SPI_connect();
	created = store_row(&c, plain, &rf);
	SPI_finish();
	monitor_call_credential(&id);

	initStringInfo(&out);
	append_credential_json(&out, &c);
	sodium_memzero(token_str, strlen(token_str));

	/* PostgREST sends this status when it calls store over /rpc. */
	(void) set_config_option("response.status", created ? "201" : "200", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	return pair_result(fcinfo, BoolGetDatum(created), PointerGetDatum(json_result(&out)));
}

/*
 * Starts an API call: reports it (monitor.c), switches to the owner and
 * finds the caller's org (PT401 if none).
 */
void
api_enter(FunctionCallInfo fcinfo, ApiAction action, OwnerContext *oc, pg_uuid_t *org)
{
	monitor_call_begin(action);
	owner_enter(fcinfo, oc);
	require_org(org, oc->user);
	monitor_call_org(org);
}

/* Ends an API call that succeeded. */
void
api_leave(const OwnerContext *oc)
{
	owner_leave(oc);
	monitor_call_end();
}

PG_FUNCTION_INFO_V1(sdr_creds_store);
Datum
sdr_creds_store(PG_FUNCTION_ARGS)
{
	OwnerContext oc;
	Datum		result;
	pg_uuid_t	org;

	api_enter(fcinfo, ACT_STORE, &oc, &org);
	result = store(fcinfo, org,
				   PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
				   PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
				   PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2),
				   PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	api_leave(&oc);
	return result;
}

/* A string field of the request body, or NULL if absent or null. */
static text *
body_string(Jsonb *body, const char *field, bool required)
{
	JsonbValue	v;

	if (!getKeyJsonValueFromContainer(&body->root, field, strlen(field), &v) || v.type == jbvNull)
	{
		if (required)
			SDR_ERROR("422", "Field '%s' is required", field);
		return NULL;
	}
	if (v.type != jbvString)
		SDR_ERROR("422", "Field '%s' must be a string", field);
	return cstring_to_text_with_len(v.val.string.val, v.val.string.len);
}

PG_FUNCTION_INFO_V1(sdr_creds_store_json);
Datum
sdr_creds_store_json(PG_FUNCTION_ARGS)
{
	pg_uuid_t	org;
	Jsonb	   *body;
	Jsonb	   *metadata = NULL;
	JsonbValue	v;
	OwnerContext oc;
	Datum		result;

	api_enter(fcinfo, ACT_STORE, &oc, &org);	/* 401 comes before 422 */
	if (PG_ARGISNULL(0))
		SDR_ERROR("422", "Request body must be a JSON object");
	body = try_parse_jsonb(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (body == NULL)
		SDR_ERROR("422", "Invalid JSON body");
	if (!JB_ROOT_IS_OBJECT(body))
		SDR_ERROR("422", "Request body must be a JSON object");
	if (getKeyJsonValueFromContainer(&body->root, "metadata", 8, &v) && v.type != jbvNull)
	{
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			SDR_ERROR("422", "Field 'metadata' must be an object");
		metadata = JsonbValueToJsonb(&v);
	}
	result = store(fcinfo, org, body_string(body, "provider", true), body_string(body, "dsn", false),
				   body_string(body, "access_token", true), metadata);
	api_leave(&oc);
	return result;
}

/*
 * Appends the org's credential for a provider, read straight from the unique
 * index: this hot path skips SPI, whose executor start-up costs more than the
 * rest of the lookup. False if there is none.
 */
static bool
append_by_provider(StringInfo out, const pg_uuid_t *org, text *provider)
{
	Relation	rel = table_open(sdr_relid(REL_CREDENTIALS), AccessShareLock);
	Relation	idx = index_open(sdr_relid(REL_CREDENTIALS_BY_PROVIDER), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	ScanKeyData keys[2];
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_UUID_EQ, UUIDPGetDatum(org));
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[1], F_TEXTEQ, PointerGetDatum(provider));
	scan = index_beginscan(rel, idx, GetActiveSnapshot(), 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
	{
		bool		should_free;
		Row			row;

		row_load(&row, ExecFetchSlotHeapTuple(slot, false, &should_free), RelationGetDescr(rel));
		append_row(out, &row, true);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

PG_FUNCTION_INFO_V1(sdr_creds_get_by_provider);
Datum
sdr_creds_get_by_provider(PG_FUNCTION_ARGS)
{
	text	   *provider;
	pg_uuid_t	org;
	StringInfoData out;
	OwnerContext oc;

	api_enter(fcinfo, ACT_GET_BY_PROVIDER, &oc, &org);
	if (PG_ARGISNULL(0))
		SDR_ERROR("422", "provider must not be null");
	provider = PG_GETARG_TEXT_PP(0);
	initStringInfo(&out);
	if (!provider_checked(provider) || !append_by_provider(&out, &org, provider))
		provider_not_found(provider);
	api_leave(&oc);
	PG_RETURN_TEXT_P(json_result(&out));
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

PG_FUNCTION_INFO_V1(sdr_creds_get);
Datum
sdr_creds_get(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	pg_uuid_t	org;
	StringInfoData out;
	OwnerContext oc;
	Row			row;

	api_enter(fcinfo, ACT_GET, &oc, &org);
	id = required_id(fcinfo);
	initStringInfo(&out);
	SPI_connect();
	fetch_owned(id, &org);
	row = row_of(SPI_tuptable, 0);
	append_row(&out, &row, true);
	SPI_finish();
	api_leave(&oc);
	PG_RETURN_TEXT_P(json_result(&out));
}

PG_FUNCTION_INFO_V1(sdr_creds_list);
Datum
sdr_creds_list(PG_FUNCTION_ARGS)
{
	int32		limit = PG_ARGISNULL(0) ? 100 : PG_GETARG_INT32(0);
	int32		offset = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);
	pg_uuid_t	org;
	Datum		args[3];
	StringInfoData out;
	uint64		n;
	OwnerContext oc;

	api_enter(fcinfo, ACT_LIST, &oc, &org);
	if (limit < 1 || limit > LIST_MAX)
		SDR_ERROR("422", "limit must be between 1 and %d", LIST_MAX);
	if (offset < 0)
		SDR_ERROR("422", "offset must be zero or more");

	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	args[0] = UUIDPGetDatum(&org);
	args[1] = Int32GetDatum(limit);
	args[2] = Int32GetDatum(offset);
	SPI_connect();
	n = stmt_run(S_CRED_LIST, args, NULL, true, 0);
	for (uint64 i = 0; i < n; i++)
	{
		Row			row = row_of(SPI_tuptable, i);

		if (i > 0)
			appendStringInfoString(&out, ", ");
		append_row(&out, &row, false);
	}
	SPI_finish();
	appendStringInfoChar(&out, ']');
	api_leave(&oc);
	PG_RETURN_TEXT_P(json_result(&out));
}

PG_FUNCTION_INFO_V1(sdr_creds_delete);
Datum
sdr_creds_delete(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	pg_uuid_t	org;
	Datum		args[2];
	StringInfoData out;
	OwnerContext oc;

	api_enter(fcinfo, ACT_DELETE, &oc, &org);
	id = required_id(fcinfo);
	SPI_connect();
	fetch_owned(id, &org);
	args[0] = UUIDPGetDatum(id);
	args[1] = UUIDPGetDatum(&org);
	if (stmt_run(S_CRED_DELETE, args, NULL, false, 0) == 0)
		id_not_found(id);
	SPI_finish();
	api_leave(&oc);

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"message\": \"Integration credentials ");
	appendStringInfoString(&out, DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))));
	appendStringInfoString(&out, " deleted successfully\"}");
	PG_RETURN_TEXT_P(json_result(&out));
}

/*
 * Re-encrypts up to batch_size rows not yet under the newest key. Rows locked
 * by others are skipped (and picked up by a later call), so reads and writes
 * go on while it runs.
 */
PG_FUNCTION_INFO_V1(sdr_creds_rotate_keys);
Datum
sdr_creds_rotate_keys(PG_FUNCTION_ARGS)
{
	int32		batch_size = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0);
	int			format;
	int32		newest;
	Datum		args[3];
	SPITupleTable *batch;
	uint64		n;
	int64		remaining;
	bool		isnull;

	monitor_call_begin(ACT_ROTATE_KEYS);
	monitor_call_as_admin();
	if (batch_size < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("batch_size must be positive")));
	(void) keyring_newest(&newest);

	SPI_connect();
	format = schema_seal_format();
	args[0] = Int32GetDatum(newest);
	args[1] = Int32GetDatum(batch_size);
	n = stmt_run_for(format, S_ROTATE_BATCH, args, NULL, false, 0);
	batch = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		Row			row = row_of(batch, i);
		char	   *plain_metadata = row_plain_metadata(&row);
		size_t		len;
		char	   *meta;
		char	   *plain = open_row(&row, plain_metadata, &len, &meta);
		RowIdentity r = row_identity(&row, plain_metadata);
		int32		kv;

		r.format = format;
		args[0] = UUIDPGetDatum(r.id);
		args[1] = PointerGetDatum(seal_credential(&r, plain, meta, &kv));
		args[2] = Int32GetDatum(kv);
		sodium_memzero(plain, len);
		stmt_run_for(format, S_ROTATE_UPDATE, args, NULL, false, 0);
	}
	args[0] = Int32GetDatum(newest);
	stmt_run_for(format, S_ROTATE_REMAINING, args, NULL, false, 1);
	remaining = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	monitor_call_end();
	return pair_result(fcinfo, Int32GetDatum((int32) n), Int64GetDatum(remaining));
}
