/*
 * statements.h: the extension's tables and indexes (names and cached OIDs)
 * and the SQL statements it runs on them, prepared once per backend.
 */
#ifndef SDR_STATEMENTS_H
#define SDR_STATEMENTS_H

#include "sdr_creds.h"

#include "utils/inval.h"

#define SDR_SCHEMA "sdr_creds"

/* Relations read directly (index scans) rather than through SQL. */
typedef enum
{
	REL_CREDENTIALS,
	REL_CREDENTIALS_BY_PROVIDER,	/* unique (org_id, provider) */
	REL_API_KEYS,
	REL_API_KEYS_BY_HASH,		/* unique (key_hash) */
	REL_ISSUERS,				/* from sdr_creds 1.2 */
	REL_COUNT
} SdrRelation;

/* The relation's OID, looked up once and forgotten when the relation changes. */
extern Oid	sdr_relid(SdrRelation rel);

/* The relation's OID, or InvalidOid if it does not exist (a table of a later version). */
extern Oid	sdr_relid_if_exists(SdrRelation rel);
/*
 * For a per-backend cache of a table's rows: whether a relcache invalidation
 * of relid (InvalidOid: of all) may concern rel (in the invalidation callback),
 * and registering that callback once, before the first read of the table, so
 * no invalidation goes unseen.
 */
extern bool sdr_relid_concerned(SdrRelation rel, Oid relid);
extern void sdr_relcache_watch(RelcacheCallbackFunction callback, bool *watching);

/*
 * The body of a trigger that empties those caches: invalidates the table's
 * relcache entry in every backend at commit (and on standbys at replay);
 * returns the trigger's data. name is the trigger function's, for the error
 * when it is called otherwise.
 */
extern struct TriggerData *sdr_invalidating_trigger(FunctionCallInfo fcinfo, const char *name);
/* What such a trigger returns. */
extern Datum sdr_trigger_result(const struct TriggerData *trigdata);

typedef enum
{
	S_CRED_BY_ID, S_CRED_LIST, S_CRED_LOCK, S_CRED_UPDATE, S_CRED_INSERT, S_CRED_DELETE,
	S_ROTATE_BATCH, S_ROTATE_UPDATE, S_ROTATE_REMAINING,
	S_API_KEY_INSERT, S_KEY_VERSION_RECORD, S_KEY_VERSION_MATCHES,
	S_CLIENT_LOCK, S_CLIENT_INSERT, S_CLIENT_UPDATE, S_CLIENT_DELETE, S_CLIENT_LIST,
	S_REFRESH_CLAIM, S_REFRESH_LOCK, S_REFRESH_STORE, S_REFRESH_BACKOFF,
	S_REFRESH_REQUEST_LOCK, S_REFRESH_REQUEST_SET,
	S_ISSUER_UPSERT, S_ISSUER_DELETE,
	S_COUNT
} StatementId;

/*
 * Runs a statement inside SPI (the caller has called SPI_connect); returns
 * SPI_processed. Errors are raised, never returned. stmt_run_for picks the
 * statement's form for a sealed format: a database still at sdr_creds 1.0 has
 * no seal_format column, and its rows are written in format 1.
 */
extern uint64 stmt_run(StatementId id, Datum *args, const char *nulls, bool read_only, long limit);
extern uint64 stmt_run_for(int seal_format, StatementId id, Datum *args, const char *nulls,
						   bool read_only, long limit);

/* The format new seals get here: 2 once the 1.1 upgrade added seal_format, else 1. */
extern int	schema_seal_format(void);

#endif
