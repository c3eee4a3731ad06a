/*
 * rows.h: row access for the SQL-callable functions (rows.c): a credentials
 * row and opening its secrets, a credential by id for its org, and the checks
 * the API functions have in common.
 */
#ifndef SDR_ROWS_H
#define SDR_ROWS_H

#include "sdr_creds.h"

#include "crypto.h"
#include "executor/spi.h"
#include "monitor.h"

#define ACCESS_TOKEN_MAX 16384

/* The credentials table's first columns, in order; seal_format exists from 1.1 on. */
enum
{
	C_ID = 1, C_ORG, C_PROVIDER, C_DSN, C_METADATA, C_SECRETS, C_KEY_VERSION, C_CREATED, C_UPDATED,
	C_SEAL_FORMAT
};

/*
 * A row of a statement's result or of the table, its columns taken apart once
 * (credentials rows: in the table's column order; seal_format is there from
 * 1.1 on). Columns after seal_format are not loaded.
 */
#define ROW_MAX_COLUMNS C_SEAL_FORMAT
typedef struct Row
{
	int			ncolumns;
	Datum		values[ROW_MAX_COLUMNS];
	bool		nulls[ROW_MAX_COLUMNS];
} Row;

extern Row	row_of(SPITupleTable *t, uint64 i);
extern void row_load(Row *r, HeapTuple tup, TupleDesc desc);
extern Datum col(const Row *r, int column, bool *isnull);

/* The row's plain metadata as JSON text; what its secrets are bound to. */
extern char *row_plain_metadata(const Row *row);
extern RowIdentity row_identity(const Row *row, const char *plain_metadata);

/* Opens a row's secrets: returns the plaintext (the token), sets *meta to its secret metadata. */
extern char *open_row(const Row *row, const char *plain_metadata, size_t *len, char **meta);

/* Whether provider is a valid name (and tells the call in progress); PT404 for a provider. */
extern bool provider_checked(text *provider);
extern void provider_not_found(text *provider) pg_attribute_noreturn();

/* The credential id argument (PT422 if null); a row by id into SPI_tuptable (404, 403). */
extern pg_uuid_t *required_id(FunctionCallInfo fcinfo);
extern void fetch_owned(pg_uuid_t *id, const pg_uuid_t *org);
extern void id_not_found(pg_uuid_t *id) pg_attribute_noreturn();

/*
 * What an OAuth client's secret is bound to: its row (id, org, provider),
 * token URL, client id, auth method and scopes.
 */
extern RowIdentity oauth_client_identity(const pg_uuid_t *id, const pg_uuid_t *org, text *provider,
										 text *token_url, const char *client_id,
										 const char *auth_method, const char *scopes);

#endif
