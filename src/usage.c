/*
 * usage.c: usage statistics in shared memory, in the manner of
 * pg_stat_statements. Two fixed-size hash tables count API calls per (org,
 * principal, action) and failed authentications per (key prefix, client).
 * Nothing is written to a table, so recording works on a hot standby and in
 * READ ONLY transactions. The statistics exist only when the library is
 * preloaded (shared_preload_libraries) and start empty at each server start.
 *
 * A call takes no lock: each backend counts into its own slot of pending
 * entries in shared memory, which only it writes, bracketed by a change count
 * as PgBackendStatus is (odd while it writes). The slot is moved into the
 * tables under the exclusive lock at transaction end once a second
 * (FLUSH_INTERVAL_MS), when it is full, and at backend exit. A reader holds
 * the shared lock, copies the tables' rows and adds every slot to them (a
 * flush empties its slot under the exclusive lock, so each count is in one
 * place or the other): counts read are exact at once, whether the counting
 * backend is busy, idle or exiting.
 *
 * A full table makes room by a clock sweep over its entries: an entry used
 * again since the hand last passed is spared once, an unused one evicted; the
 * hand looks at SWEEP_MAX entries at most, so an insert costs the same
 * whatever the number of orgs.
 */
#include "monitor.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "results.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

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
#define PENDING_MAX 64			/* pending entries of a backend, per table */
#define FLUSH_INTERVAL_MS 1000	/* a backend's slot is moved at most this often at
								 * transaction end */
#define SWEEP_MAX 32			/* entries the clock hand spares at most per insert */

/* What every entry holds after its key: when it was used, its place in the ring. */
typedef struct Stamp
{
	TimestampTz first_at;
	TimestampTz last_at;
	int32		ring_pos;		/* its index in the table's ring */
	bool		used;			/* used again since the clock hand passed */
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

/* A table's clock: entries in use (ring[0..used)) and where the hand is. */
typedef struct Clock
{
	int			used;
	int			hand;
} Clock;

/*
 * Shared state: the lock over both tables (shared to read, exclusive to
 * change), the generation usage_reset advances, and each table's clock.
 */
typedef struct UsageShared
{
	LWLock	   *lock;
	pg_atomic_uint32 generation;
	Clock		clock[2];
} UsageShared;

/*
 * A backend's pending counts, written only by it. changecount is odd while
 * it writes; a reader copies until it reads the same even count before and
 * after. Entries of an older generation (before a usage_reset) count for
 * nothing.
 */
typedef struct Pending
{
	uint32		changecount;
	uint32		generation;
	int			n[2];
	UsageEntry	usage[PENDING_MAX];
	FailEntry	fail[PENDING_MAX];
} Pending;

/* One of the two tables, as the generic code below sees it. */
typedef struct Table
{
	const char *name;
	int			idx;			/* its clock and its count in Pending.n */
	HTAB	   *hash;
	void	  **ring;			/* usage_max entries, in shared memory */
	Size		key_size;
	Size		entry_size;
	Size		stamp_offset;
	Size		pending_offset; /* of its entries in Pending */
	/* adds src's counters and last values to dst's */
	void		(*add) (void *dst, const void *src);
} Table;

static void usage_add(void *dst, const void *src);
static void fail_add(void *dst, const void *src);

static int	usage_max = 5000;
static UsageShared *shared = NULL;
static Pending *slots = NULL;	/* slot_count() of them */
static Table usage_table = {"sdr_creds usage", 0, NULL, NULL, sizeof(UsageKey), sizeof(UsageEntry),
offsetof(UsageEntry, stamp), offsetof(Pending, usage), usage_add};
static Table fail_table = {"sdr_creds auth failures", 1, NULL, NULL, sizeof(FailKey), sizeof(FailEntry),
offsetof(FailEntry, stamp), offsetof(Pending, fail), fail_add};

/* This backend's slot (NULL: count straight into the tables), and its state. */
static Pending *my_slot = NULL;
static bool my_slot_checked = false;
static uint32 my_hash[2][PENDING_MAX];	/* each pending entry's key hash */
static int	my_last[2];			/* the pending entry found last */
static TimestampTz my_flushed_at = 0;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

/* Slots are known in shmem_request_hook from PostgreSQL 15 on; before, none. */
static int
slot_count(void)
{
#if PG_VERSION_NUM >= 150000
	return MaxBackends;
#else
	return 0;
#endif
}

static Size
ring_size(void)
{
	return mul_size(mul_size(usage_max, sizeof(void *)), 2);
}

static Size
slots_size(void)
{
	return mul_size(slot_count(), sizeof(Pending));
}

static Size
shared_size(void)
{
	return add_size(add_size(sizeof(UsageShared), add_size(ring_size(), slots_size())),
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
table_attach(Table *t, void **ring)
{
	HASHCTL		info;

	memset(&info, 0, sizeof(info));
	info.keysize = t->key_size;
	info.entrysize = t->entry_size;
	t->hash = ShmemInitHash(t->name, usage_max, usage_max, &info, HASH_ELEM | HASH_BLOBS);
	t->ring = ring;
}

/* Creates the shared state at server start, or attaches to it (EXEC_BACKEND). */
static void
shmem_startup(void)
{
	bool		found;
	bool		found_ring;
	bool		found_slots;
	void	  **ring;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("sdr_creds usage state", sizeof(UsageShared), &found);
	ring = ShmemInitStruct("sdr_creds usage rings", ring_size(), &found_ring);
	slots = ShmemInitStruct("sdr_creds usage pending", slots_size(), &found_slots);
	if (!found)
	{
		memset(shared, 0, sizeof(UsageShared));
		shared->lock = &(GetNamedLWLockTranche(LOCK_TRANCHE))->lock;
		pg_atomic_init_u32(&shared->generation, 1);
	}
	if (!found_slots)
		memset(slots, 0, slots_size());
	table_attach(&usage_table, ring);
	table_attach(&fail_table, ring + usage_max);
	LWLockRelease(AddinShmemInitLock);
}

static void usage_xact(XactEvent event, void *arg);

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
	/* registered first, so it runs after the monitor's (the last registered runs first) */
	RegisterXactCallback(usage_xact, NULL);
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

static void *
pending_entry(const Table *t, Pending *slot, int i)
{
	return (char *) slot + t->pending_offset + i * t->entry_size;
}

/* src's times into dst's: the first first_at, the last last_at; whether src is later. */
static bool
stamp_add(Stamp *dst, const Stamp *src)
{
	bool		later = src->last_at >= dst->last_at;

	if (dst->first_at == 0 || (src->first_at != 0 && src->first_at < dst->first_at))
		dst->first_at = src->first_at;
	if (later)
		dst->last_at = src->last_at;
	return later;
}

static void
usage_add(void *dst, const void *src)
{
	UsageEntry *d = dst;
	const UsageEntry *s = src;

	d->calls += s->calls;
	d->failures += s->failures;
	if (stamp_add(&d->stamp, &s->stamp))
		memcpy(d->last_client, s->last_client, CLIENT_MAX);
}

static void
fail_add(void *dst, const void *src)
{
	FailEntry  *d = dst;
	const FailEntry *s = src;

	d->count += s->count;
	if (stamp_add(&d->stamp, &s->stamp))
		memcpy(d->last_reason, s->last_reason, REASON_MAX);
}

/*
 * A ring position for a new entry: a free one, else the one whose entry it
 * evicts. The hand spares entries used since it last passed (SWEEP_MAX at
 * most, then evicts the next anyway) and stops at the first unused one. Lock
 * held exclusively.
 */
static int
clock_take(const Table *t)
{
	Clock	   *c = &shared->clock[t->idx];
	int			pos;

	if (c->used < usage_max)
		return c->used++;
	for (int spared = 0; spared < SWEEP_MAX; spared++)
	{
		Stamp	   *s = stamp_of(t, t->ring[c->hand]);

		if (!s->used)
			break;
		s->used = false;
		c->hand = (c->hand + 1) % usage_max;
	}
	pos = c->hand;
	hash_search(t->hash, t->ring[pos], HASH_REMOVE, NULL);
	c->hand = (pos + 1) % usage_max;
	return pos;
}

/* Gives up ring position pos (its entry gone): the last entry takes its place. */
static void
clock_drop(const Table *t, int pos)
{
	Clock	   *c = &shared->clock[t->idx];

	if (pos != --c->used)
	{
		t->ring[pos] = t->ring[c->used];
		stamp_of(t, t->ring[pos])->ring_pos = pos;
	}
	if (c->hand >= c->used)
		c->hand = 0;
}

/*
 * Adds n entries (keys and counts) to a table, each to its row, found or
 * added (in their order, making room first). Lock held exclusively.
 */
static void
table_add(const Table *t, const void *entries, int n)
{
	for (int i = 0; i < n; i++)
	{
		const void *src = (const char *) entries + i * t->entry_size;
		bool		found;
		void	   *entry = hash_search(t->hash, src, HASH_FIND, NULL);
		Stamp	   *stamp;

		if (entry != NULL)
			stamp_of(t, entry)->used = true;
		else
		{
			int			pos = clock_take(t);

			entry = hash_search(t->hash, src, HASH_ENTER_NULL, &found);
			if (entry == NULL)
			{
				clock_drop(t, pos);
				continue;
			}
			memset((char *) entry + t->key_size, 0, t->entry_size - t->key_size);
			stamp = stamp_of(t, entry);
			stamp->ring_pos = pos;
			t->ring[pos] = entry;
		}
		t->add(entry, src);
	}
}

/* Marks this backend's slot as being changed: readers wait until it is done. */
static void
change_begin(void)
{
	START_CRIT_SECTION();
	my_slot->changecount++;
	pg_write_barrier();
}

static void
change_end(void)
{
	pg_write_barrier();
	my_slot->changecount++;
	END_CRIT_SECTION();
}

/*
 * Moves this backend's pending entries into the tables (those of the current
 * generation) and empties its slot, under the exclusive lock: a reader, under
 * the shared lock, finds each count in a table or in the slot, never both.
 */
static void
pending_flush(void)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (my_slot->generation == pg_atomic_read_u32(&shared->generation))
	{
		table_add(&usage_table, my_slot->usage, my_slot->n[0]);
		table_add(&fail_table, my_slot->fail, my_slot->n[1]);
	}
	change_begin();
	my_slot->n[0] = my_slot->n[1] = 0;
	change_end();
	LWLockRelease(shared->lock);
	my_flushed_at = GetCurrentTimestamp();
}

static bool
pending_any(void)
{
	return my_slot != NULL && (my_slot->n[0] > 0 || my_slot->n[1] > 0);
}

/* At backend exit: nothing pending is lost. */
static void
usage_exit(int code, Datum arg)
{
	if (pending_any())
		pending_flush();
	my_slot = NULL;
}

/* At the end of a top-level transaction, once a FLUSH_INTERVAL_MS. */
static void
usage_xact(XactEvent event, void *arg)
{
	if (xact_event_ends(event) && pending_any() &&
		TimestampDifferenceExceeds(my_flushed_at, GetCurrentTimestamp(), FLUSH_INTERVAL_MS))
		pending_flush();
}

/* This backend's slot, taken at its first call; NULL when it has none. */
static Pending *
slot_get(void)
{
	if (!my_slot_checked)
	{
		my_slot_checked = true;
		if (MyBackendId >= 1 && MyBackendId <= slot_count())
		{
			my_slot = &slots[MyBackendId - 1];
			before_shmem_exit(usage_exit, (Datum) 0);
			/* a slot is emptied at exit; one left by a backend that died is not ours to count */
			change_begin();
			my_slot->n[0] = my_slot->n[1] = 0;
			change_end();
			my_flushed_at = GetCurrentTimestamp();
		}
	}
	return my_slot;
}

/*
 * Counts one call in entry (key and values filled in, counters at 1 or 0).
 * Into this backend's slot (flushed first when full), else straight into the
 * table under the exclusive lock.
 */
static void
count(const Table *t, const void *entry)
{
	Pending    *slot = slot_get();
	uint32		gen;
	uint32		hash;
	int			i;
	void	   *pending;

	if (slot == NULL)
	{
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		table_add(t, entry, 1);
		LWLockRelease(shared->lock);
		return;
	}
	gen = pg_atomic_read_u32(&shared->generation);
	if (slot->generation != gen)
	{
		change_begin();
		slot->n[0] = slot->n[1] = 0;
		slot->generation = gen;
		change_end();
	}
	i = my_last[t->idx];
	if (i >= slot->n[t->idx] || memcmp(pending_entry(t, slot, i), entry, t->key_size) != 0)
	{
		hash = hash_bytes(entry, t->key_size);
		for (i = 0; i < slot->n[t->idx]; i++)
			if (my_hash[t->idx][i] == hash &&
				memcmp(pending_entry(t, slot, i), entry, t->key_size) == 0)
				break;
		if (i == PENDING_MAX)
		{
			pending_flush();
			i = 0;
		}
		if (i == slot->n[t->idx])
		{
			my_hash[t->idx][i] = hash;
			change_begin();
			memcpy(pending_entry(t, slot, i), entry, t->entry_size);
			slot->n[t->idx]++;
			change_end();
			my_last[t->idx] = i;
			return;
		}
		my_last[t->idx] = i;
	}
	pending = pending_entry(t, slot, i);
	change_begin();
	t->add(pending, entry);
	change_end();
}

void
usage_record(const pg_uuid_t *org, const char *principal, ApiAction action,
			 bool failed, const char *client)
{
	UsageEntry	entry;

	if (shared == NULL || org == NULL || (int) action < 0 || action >= ACT_COUNT)
		return;
	memset(&entry, 0, sizeof(entry));
	entry.key.dbid = MyDatabaseId;
	entry.key.org = *org;
	copy_field(entry.key.principal, principal, PRINCIPAL_MAX);
	entry.key.action = action;
	entry.stamp.first_at = entry.stamp.last_at = GetCurrentTimestamp();
	entry.calls = 1;
	entry.failures = failed ? 1 : 0;
	copy_field(entry.last_client, client, CLIENT_MAX);
	count(&usage_table, &entry);
}

void
usage_auth_failure(const char *key_prefix, const char *client, const char *reason)
{
	FailEntry	entry;

	if (shared == NULL)
		return;
	memset(&entry, 0, sizeof(entry));
	entry.key.dbid = MyDatabaseId;
	copy_field(entry.key.key_prefix, key_prefix, KEY_PREFIX_MAX);
	copy_field(entry.key.client, client, CLIENT_MAX);
	entry.stamp.first_at = entry.stamp.last_at = GetCurrentTimestamp();
	entry.count = 1;
	copy_field(entry.last_reason, reason, REASON_MAX);
	count(&fail_table, &entry);
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

/* Whether an entry is of the current database (and of org, when given). */
static bool
row_wanted(const void *entry, const pg_uuid_t *org)
{
	return *(const Oid *) entry == MyDatabaseId &&
		(org == NULL || memcmp(&((const UsageKey *) entry)->org, org, sizeof(*org)) == 0);
}

/* Adds entry to the rows being read: a row of its own, or to its key's. */
static void
rows_add(const Table *t, HTAB *rows, const void *entry)
{
	bool		found;
	void	   *row = hash_search(rows, entry, HASH_ENTER, &found);

	if (found)
		t->add(row, entry);
	else
		memcpy(row, entry, t->entry_size);
}

/*
 * Copies a slot's pending entries of table t into buf, as they were at one
 * moment (none of an older generation); returns how many.
 */
static int
slot_copy(const Table *t, Pending *slot, uint32 gen, char *buf)
{
	volatile Pending *v = slot;

	for (;;)
	{
		uint32		before = v->changecount;
		int			n = 0;

		pg_read_barrier();
		if ((before & 1) == 0)
		{
			if (v->generation == gen)
			{
				n = Min(Max(v->n[t->idx], 0), PENDING_MAX);
				memcpy(buf, pending_entry(t, slot, 0), n * t->entry_size);
			}
			pg_read_barrier();
			if (v->changecount == before)
				return n;
		}
		pg_spin_delay();
	}
}

/*
 * Returns the current database's entries of a table as rows, only org's when
 * org is given (both keys start with the database; a usage key then has the
 * org): the table's rows plus every backend's pending counts, read under the
 * shared lock, so that each count is in one or the other.
 */
static void
table_rows(const Table *t, ReturnSetInfo *rsinfo, const pg_uuid_t *org,
		   void (*put) (ReturnSetInfo *rsinfo, const void *entry))
{
	HASH_SEQ_STATUS seq;
	void	   *entry;
	HASHCTL		info;
	HTAB	   *rows;
	char	   *buf = palloc(PENDING_MAX * t->entry_size);

	memset(&info, 0, sizeof(info));
	info.keysize = t->key_size;
	info.entrysize = t->entry_size;
	info.hcxt = CurrentMemoryContext;
	rows = hash_create("sdr_creds usage rows", 256, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	LWLockAcquire(shared->lock, LW_SHARED);
	hash_seq_init(&seq, t->hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
		if (row_wanted(entry, org))
			rows_add(t, rows, entry);
	for (int s = 0; s < slot_count(); s++)
	{
		int			n = slot_copy(t, &slots[s], pg_atomic_read_u32(&shared->generation), buf);

		for (int i = 0; i < n; i++)
			if (row_wanted(buf + i * t->entry_size, org))
				rows_add(t, rows, buf + i * t->entry_size);
	}
	LWLockRelease(shared->lock);

	hash_seq_init(&seq, rows);
	while ((entry = hash_seq_search(&seq)) != NULL)
		put(rsinfo, entry);
	hash_destroy(rows);
	pfree(buf);
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

/* Empties a table and its clock (lock held exclusively). */
static void
table_clear(const Table *t)
{
	HASH_SEQ_STATUS seq;
	void	   *entry;

	hash_seq_init(&seq, t->hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
		hash_search(t->hash, entry, HASH_REMOVE, NULL);
	shared->clock[t->idx].used = shared->clock[t->idx].hand = 0;
}

/*
 * Empties both tables and, by advancing the generation, every backend's
 * pending counts (each empties its slot at its next call or flush; readers
 * skip it meanwhile).
 */
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
	pg_atomic_fetch_add_u32(&shared->generation, 1);
	LWLockRelease(shared->lock);
	PG_RETURN_VOID();
}
