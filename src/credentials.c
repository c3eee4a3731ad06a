/*
 * credentials.c: the SQL-callable credential functions (store, get by
 * provider, get by id, list, delete) and key rotation.
 *
 * Each call finds its org (api_enter, auth.c), runs the statements of
 * statements.c (get by provider reads the unique index directly), opens or
 * seals the row's secrets (rows.c, crypto.c) and writes the JSON object once.
 */
#include "sdr_creds.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "auth.h"
#include "crypto.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "json.h"
#include "keyring.h"
#include "metadata.h"
#include "monitor.h"
#include "org_context.h"
#include "redact.h"
#include "refresh.h"
#include "results.h"
#include "rows.h"
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
