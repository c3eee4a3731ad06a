/*
 * api_keys.c: creating API keys. A key is "sk_live_" or "sk_test_" followed by
 * 192 random bits in base64url; only its SHA-256 hash and a 12-character
 * display prefix are stored, so the key is shown once, at creation.
 * Listing and revoking are plain SQL functions in the install script.
 */
#include "sdr_creds.h"

#include <sodium.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "json.h"
#include "utils/builtins.h"

#define API_KEY_RANDOM_BYTES 24
#define API_KEY_PREFIX_CHARS 12
#define API_KEY_NAME_MAX 200

void
api_key_hash(const char *key, size_t len, unsigned char *hash)
{
	StaticAssertStmt(API_KEY_HASH_BYTES == crypto_hash_sha256_BYTES, "hash size");
	crypto_hash_sha256(hash, (const unsigned char *) key, len);
}

bytea *
bytes_to_bytea(const unsigned char *b, size_t len)
{
	bytea	   *out = palloc(VARHDRSZ + len);

	SET_VARSIZE(out, VARHDRSZ + len);
	memcpy(VARDATA(out), b, len);
	return out;
}

PG_FUNCTION_INFO_V1(sdr_creds_create_api_key);
Datum
sdr_creds_create_api_key(PG_FUNCTION_ARGS)
{
	const char *env = PG_ARGISNULL(3) ? "live" : text_to_cstring(PG_GETARG_TEXT_PP(3));
	text	   *name = PG_ARGISNULL(1) ? cstring_to_text("") : PG_GETARG_TEXT_PP(1);
	unsigned char rnd[API_KEY_RANDOM_BYTES];
	char		key[8 + sodium_base64_ENCODED_LEN(API_KEY_RANDOM_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	unsigned char hash[API_KEY_HASH_BYTES];
	pg_uuid_t	id;
	pg_uuid_t  *org;
	Oid			types[6] = {UUIDOID, UUIDOID, TEXTOID, TEXTOID, BYTEAOID, TIMESTAMPTZOID};
	Datum		args[6];
	char		nulls[6] = "      ";
	StringInfoData out;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("org_id must not be null")));
	if (strcmp(env, "live") != 0 && strcmp(env, "test") != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("environment must be 'live' or 'test'")));
	if (VARSIZE_ANY_EXHDR(name) > API_KEY_NAME_MAX)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("name must be at most %d bytes", API_KEY_NAME_MAX)));
	if (!PG_ARGISNULL(2) && (TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(2)) ||
							 PG_GETARG_TIMESTAMPTZ(2) <= GetCurrentTransactionStartTimestamp()))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("expires_at must be a finite time in the future (NULL: never expires)")));
	org = PG_GETARG_UUID_P(0);
	redact_activity();

	snprintf(key, sizeof(key), "sk_%s_", env);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2base64(key + 8, sizeof(key) - 8, rnd, sizeof(rnd),
					  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(rnd, sizeof(rnd));
	api_key_hash(key, strlen(key), hash);
	new_uuid(&id);

	args[0] = UUIDPGetDatum(&id);
	args[1] = UUIDPGetDatum(org);
	args[2] = PointerGetDatum(name);
	args[3] = PointerGetDatum(cstring_to_text_with_len(key, API_KEY_PREFIX_CHARS));
	args[4] = PointerGetDatum(bytes_to_bytea(hash, sizeof(hash)));
	args[5] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	if (PG_ARGISNULL(2))
		nulls[5] = 'n';

	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO sdr_creds.api_keys"
							  " (id, org_id, name, prefix, key_hash, expires_at)"
							  " VALUES ($1, $2, $3, $4, $5, $6)",
							  6, types, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "sdr_creds: could not store the API key");
	SPI_finish();

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"id\": ");
	append_uuid(&out, &id);
	appendStringInfoString(&out, ", \"org_id\": ");
	append_uuid(&out, org);
	appendStringInfoString(&out, ", \"name\": ");
	append_json_string(&out, VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
	appendStringInfoString(&out, ", \"prefix\": ");
	append_json_string(&out, key, API_KEY_PREFIX_CHARS);
	appendStringInfoString(&out, ", \"key\": ");
	append_json_string(&out, key, strlen(key));
	appendStringInfoString(&out, ", \"expires_at\": ");
	if (PG_ARGISNULL(2))
		appendStringInfoString(&out, "null");
	else
		append_timestamp(&out, PG_GETARG_TIMESTAMPTZ(2));
	appendStringInfoChar(&out, '}');
	sodium_memzero(key, sizeof(key));

	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
