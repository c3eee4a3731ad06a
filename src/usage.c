/*
 * usage.c: usage statistics in shared memory, in the manner of
 * pg_stat_statements. Two fixed-size hash tables count API calls per (org,
 * principal, action) and failed authentications per (key prefix, client);
 * when a table is full its least recently used entries are evicted. Nothing
 * is written to a table, so recording works on a hot standby and in READ ONLY
 * transactions. The statistics exist only when the library is preloaded
 * (shared_preload_libraries) and start empty at each server start.
 */
#include "monitor.h"

#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "results.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"

const char *const api_action_names[ACT_COUNT] = {
	[ACT_AUTHENTICATE] = "authenticate", [ACT_STORE] = "store",
	[ACT_GET_BY_PROVIDER] = "get_by_provider", [ACT_GET] = "get", [ACT_LIST] = "list",
	[ACT_DELETE] = "delete", [ACT_CREATE_API_KEY] = "create_api_key",
	[ACT_REVOKE_API_KEY] = "revoke_api_key", [ACT_ROTATE_KEYS] = "rotate_keys",
	[ACT_SET_OAUTH_CLIENT] = "set_oauth_client", [ACT_DELETE_OAUTH_CLIENT] = "delete_oauth_client",
	[ACT_LIST_OAUTH_CLIENTS] = "list_oauth_clients", [ACT_REQUEST_REFRESH] = "request_refresh",
	[ACT_REFRESH] = "refresh", [ACT_SET_ISSUER] = "set_issuer",
	[ACT_DELETE_ISSUER] = "delete_issuer",
};

#define LOCK_TRANCHE "sdr_creds usage"
#define REASON_MAX 32
#define EVICT_PERCENT 5

/* What every entry holds after its key: its lock and when it was used. */
typedef struct Stamp
{
	slock_t		mutex;			/* protects the counters of its entry */
	TimestampTz first_at;
	TimestampTz last_at;
} Stamp;

/* Keys start with the database: the views show the current database's entries. */
typedef struct UsageKey
{
	Oid			dbid;
	pg_uuid_t	org;
	char		principal[PRINCIPAL_MAX];
	int32		action;
} UsageKey;

typedef struct UsageEntry
{
	UsageKey	key;
	Stamp		stamp;
	int64		calls;
	int64		failures;
	char		last_client[CLIENT_MAX];
} UsageEntry;

typedef struct FailKey
{
	Oid			dbid;
	char		key_prefix[KEY_PREFIX_MAX];
	char		client[CLIENT_MAX];
} FailKey;

typedef struct FailEntry
{
	FailKey		key;
	Stamp		stamp;
	int64		count;
	char		last_reason[REASON_MAX];
} FailEntry;

/* Shared state: the lock over both tables, and room to sort for eviction. */
typedef struct UsageShared
{
	LWLock	   *lock;			/* shared to update, exclusive to add or remove */
	TimestampTz scratch[FLEXIBLE_ARRAY_MEMBER];	/* usage_max last_at values */
} UsageShared;

/* One of the two tables, as the generic code below sees it. */
typedef struct Table
{
	const char *name;
	HTAB	   *hash;
	Size		key_size;
	Size		entry_size;
	Size		stamp_offset;
} Table;

static int	usage_max = 5000;
static UsageShared *shared = NULL;
static Table usage_table = {"sdr_creds usage", NULL, sizeof(UsageKey), sizeof(UsageEntry),
offsetof(UsageEntry, stamp)};
static Table fail_table = {"sdr_creds auth failures", NULL, sizeof(FailKey), sizeof(FailEntry),
offsetof(FailEntry, stamp)};

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static Size
struct_size(void)
{
	return add_size(offsetof(UsageShared, scratch), mul_size(usage_max, sizeof(TimestampTz)));
}

static Size
shared_size(void)
{
	return add_size(struct_size(),
					add_size(hash_estimate_size(usage_max, sizeof(UsageEntry)),
							 hash_estimate_size(usage_max, sizeof(FailEntry))));
}

static void
shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche(LOCK_TRANCHE, 1);
}

static void
table_attach(Table *t)
{
	HASHCTL		info;

	memset(&info, 0, sizeof(info));
	info.keysize = t->key_size;
	info.entrysize = t->entry_size;
	t->hash = ShmemInitHash(t->name, usage_max, usage_max, &info, HASH_ELEM | HASH_BLOBS);
}

/* Creates the shared state at server start, or attaches to it (EXEC_BACKEND). */
static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("sdr_creds usage state", struct_size(), &found);
	if (!found)
		shared->lock = &(GetNamedLWLockTranche(LOCK_TRANCHE))->lock;
	table_attach(&usage_table);
	table_attach(&fail_table);
	LWLockRelease(AddinShmemInitLock);
}

/* A PGC_POSTMASTER setting can only be defined at server start, as pgss does. */
void
usage_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("sdr_creds.usage_max",
							"Entries of the usage statistics (and of the failed-authentication statistics).",
							"Takes effect at server start; only with sdr_creds in shared_preload_libraries.",
							&usage_max, 5000, 100, 1000000, PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
#else
	shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/* Copies src into a field of size dst_size, cut at a character boundary. */
static void
copy_field(char *dst, const char *src, int dst_size)
{
	int			len;

	if (src == NULL)
		src = "";
	len = strnlen(src, dst_size);
	if (len >= dst_size)
		len = pg_mbcliplen(src, len, dst_size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static Stamp *
stamp_of(const Table *t, void *entry)
{
	return (Stamp *) ((char *) entry + t->stamp_offset);
}

static int
last_at_cmp(const void *a, const void *b)
{
	TimestampTz x = *(const TimestampTz *) a;
	TimestampTz y = *(const TimestampTz *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * Removes the EVICT_PERCENT least recently used entries of a full table (at
 * least one). Caller holds the lock exclusively, so no spinlock is needed.
 */
static void
table_evict(const Table *t)
{
	HASH_SEQ_STATUS seq;
	void	   *entry;
	long		n = 0;
	long		victims;
	TimestampTz cutoff;

	hash_seq_init(&seq, t->hash);
	while ((entry = hash_seq_search(&seq)) != NULL && n < usage_max)
		shared->scratch[n++] = stamp_of(t, entry)->last_at;
	if (entry != NULL)
		hash_seq_term(&seq);
	if (n == 0)
		return;
	qsort(shared->scratch, n, sizeof(TimestampTz), last_at_cmp);
	victims = Max(n * EVICT_PERCENT / 100, 1);
	cutoff = shared->scratch[victims - 1];

	hash_seq_init(&seq, t->hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (victims > 0 && stamp_of(t, entry)->last_at <= cutoff)
		{
			hash_search(t->hash, entry, HASH_REMOVE, NULL);
			victims--;
		}
	}
}

/* Adds an entry (lock held exclusively), making room first; NULL if none. */
static void *
table_insert(const Table *t, const void *key, TimestampTz now)
{
	bool		found;
	void	   *entry;
	Stamp	   *stamp;

	if (hash_get_num_entries(t->hash) >= usage_max)
		table_evict(t);
	entry = hash_search(t->hash, key, HASH_ENTER_NULL, &found);
	if (entry == NULL || found)
		return entry;
	memset((char *) entry + t->key_size, 0, t->entry_size - t->key_size);
	stamp = stamp_of(t, entry);
	SpinLockInit(&stamp->mutex);
	stamp->first_at = now;
	return entry;
}

/*
 * The entry for key, found or added, with the shared lock held and its
 * spinlock taken and last_at set to now; NULL (and no lock) if there is no
 * room. The caller updates its counters, then calls table_unlock.
 */
static void *
table_lock(const Table *t, const void *key, TimestampTz now)
{
	void	   *entry;
	Stamp	   *stamp;

	LWLockAcquire(shared->lock, LW_SHARED);
	entry = hash_search(t->hash, key, HASH_FIND, NULL);
	if (entry == NULL)
	{
		LWLockRelease(shared->lock);
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		entry = table_insert(t, key, now);
		if (entry == NULL)
		{
			LWLockRelease(shared->lock);
			return NULL;
		}
	}
	stamp = stamp_of(t, entry);
	SpinLockAcquire(&stamp->mutex);
	stamp->last_at = now;
	return entry;
}

static void
table_unlock(const Table *t, void *entry)
{
	SpinLockRelease(&stamp_of(t, entry)->mutex);
	LWLockRelease(shared->lock);
}

void
usage_record(const pg_uuid_t *org, const char *principal, ApiAction action,
			 bool failed, const char *client)
{
	UsageKey	key;
	UsageEntry *entry;
	char		client_buf[CLIENT_MAX];

	if (shared == NULL || org == NULL || (int) action < 0 || action >= ACT_COUNT)
		return;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.org = *org;
	copy_field(key.principal, principal, PRINCIPAL_MAX);
	key.action = action;
	copy_field(client_buf, client, CLIENT_MAX);

	entry = table_lock(&usage_table, &key, GetCurrentTimestamp());
	if (entry == NULL)
		return;
	entry->calls++;
	if (failed)
		entry->failures++;
	memcpy(entry->last_client, client_buf, CLIENT_MAX);
	table_unlock(&usage_table, entry);
}

void
usage_auth_failure(const char *key_prefix, const char *client, const char *reason)
{
	FailKey		key;
	FailEntry  *entry;
	char		reason_buf[REASON_MAX];

	if (shared == NULL)
		return;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	copy_field(key.key_prefix, key_prefix, KEY_PREFIX_MAX);
	copy_field(key.client, client, CLIENT_MAX);
	copy_field(reason_buf, reason, REASON_MAX);

	entry = table_lock(&fail_table, &key, GetCurrentTimestamp());
	if (entry == NULL)
		return;
	entry->count++;
	memcpy(entry->last_reason, reason_buf, REASON_MAX);
	table_unlock(&fail_table, entry);
}

/* SQL-callable functions */

/* Who sees what: an org context limits to its org; else the stats readers see all. */
typedef enum
{
	SEE_NONE, SEE_ORG, SEE_ALL
} Visibility;

static Visibility
visibility(pg_uuid_t *org)
{
	if (org_context_get(org, GetUserId()))
		return SEE_ORG;
	if (superuser() || has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS))
		return SEE_ALL;
	return SEE_NONE;
}

static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

static void
usage_put(ReturnSetInfo *rsinfo, const void *entry)
{
	const UsageEntry *e = entry;
	Datum		values[8];
	bool		nulls[8] = {false};

	values[0] = UUIDPGetDatum(&e->key.org);
	values[1] = CStringGetTextDatum(e->key.principal);
	values[2] = CStringGetTextDatum(api_action_names[e->key.action]);
	values[3] = Int64GetDatum(e->calls);
	values[4] = Int64GetDatum(e->failures);
	values[5] = TimestampTzGetDatum(e->stamp.first_at);
	values[6] = TimestampTzGetDatum(e->stamp.last_at);
	values[7] = text_or_null(e->last_client, &nulls[7]);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Copies an entry under its spinlock, so its counters are read together. */
static void
entry_copy(const Table *t, void *dst, void *entry)
{
	Stamp	   *stamp = stamp_of(t, entry);

	SpinLockAcquire(&stamp->mutex);
	memcpy(dst, entry, t->entry_size);
	SpinLockRelease(&stamp->mutex);
}

/*
 * Returns the current database's entries of a table as rows, only org's when
 * org is given (both keys start with the database; a usage key then has the
 * org).
 */
static void
table_rows(const Table *t, ReturnSetInfo *rsinfo, const pg_uuid_t *org,
		   void (*put) (ReturnSetInfo *rsinfo, const void *entry))
{
	HASH_SEQ_STATUS seq;
	void	   *entry;
	union
	{
		UsageEntry	usage;
		FailEntry	fail;
	}			copy;

	LWLockAcquire(shared->lock, LW_SHARED);
	hash_seq_init(&seq, t->hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (*(Oid *) entry != MyDatabaseId ||
			(org && memcmp(&((UsageKey *) entry)->org, org, sizeof(*org)) != 0))
			continue;
		entry_copy(t, &copy, entry);
		put(rsinfo, &copy);
	}
	LWLockRelease(shared->lock);
}

PG_FUNCTION_INFO_V1(sdr_creds_usage_entries);
Datum
sdr_creds_usage_entries(PG_FUNCTION_ARGS)
{
	pg_uuid_t	org;
	Visibility	see = visibility(&org);

	srf_begin(fcinfo);
	if (shared != NULL && see != SEE_NONE)
		table_rows(&usage_table, (ReturnSetInfo *) fcinfo->resultinfo,
				   see == SEE_ORG ? &org : NULL, usage_put);
	return (Datum) 0;
}

static void
fail_put(ReturnSetInfo *rsinfo, const void *entry)
{
	const FailEntry *e = entry;
	Datum		values[5];
	bool		nulls[5] = {false};

	values[0] = CStringGetTextDatum(e->key.key_prefix);
	values[1] = text_or_null(e->key.client, &nulls[1]);
	values[2] = Int64GetDatum(e->count);
	values[3] = TimestampTzGetDatum(e->stamp.last_at);
	values[4] = text_or_null(e->last_reason, &nulls[4]);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(sdr_creds_auth_failure_entries);
Datum
sdr_creds_auth_failure_entries(PG_FUNCTION_ARGS)
{
	pg_uuid_t	org;

	srf_begin(fcinfo);
	if (shared != NULL && visibility(&org) == SEE_ALL)
		table_rows(&fail_table, (ReturnSetInfo *) fcinfo->resultinfo, NULL, fail_put);
	return (Datum) 0;
}

static void
table_clear(const Table *t)
{
	HASH_SEQ_STATUS seq;
	void	   *entry;

	hash_seq_init(&seq, t->hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
		hash_search(t->hash, entry, HASH_REMOVE, NULL);
}

PG_FUNCTION_INFO_V1(sdr_creds_usage_reset);
Datum
sdr_creds_usage_reset(PG_FUNCTION_ARGS)
{
	if (shared == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("sdr_creds usage statistics must be loaded via shared_preload_libraries")));
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	table_clear(&usage_table);
	table_clear(&fail_table);
	LWLockRelease(shared->lock);
	PG_RETURN_VOID();
}
