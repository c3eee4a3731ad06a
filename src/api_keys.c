/*
 * api_keys.c: the API key lifecycle: create, verify, cache, invalidate.
 * (Listing and revoking are SQL functions in the install script.)
 *
 * A key is "sk_live_" or "sk_test_" followed by 192 random bits in base64url;
 * only its SHA-256 hash and a 12-character display prefix are stored, so the
 * key is shown once, at creation.
 *
 * Verified keys are cached per backend, by hash, so a hit skips the lookup.
 * Revocation still holds at once, in every session and isolation level:
 * - every change to a row of sdr_creds.api_keys fires a trigger
 *   (api_keys_changed, per row, ENABLE ALWAYS so logical replication's apply
 *   fires it too) that sends, when it commits, an invalidation for that key
 *   alone to every backend: a relcache invalidation of a "tag", an OID made
 *   from the key's hash (key_tag) that names no relation. It travels as any
 *   relcache invalidation does, in the commit record, so standbys apply it
 *   after replay. The cache is keyed by tag and drops that tag's entry
 *   (key_cache_invalidate); keys other sessions use stay cached. A TRUNCATE,
 *   DDL on the table, or a lost invalidation (sinval overflow) empties it;
 * - every use first reads pending invalidations (AcceptInvalidationMessages),
 *   so a hit is never older than the last committed change;
 * - a miss reads the key's row with a fresh snapshot, not the statement's or
 *   the transaction's, so a revoke committed after the statement or the
 *   REPEATABLE READ transaction began is seen;
 * - a row read is cached only if no relcache invalidation arrived while it
 *   was read (key_cache_generation): that invalidation may be for a change
 *   the snapshot predates;
 * - expiry is checked against the clock on every use.
 * Two keys whose tags collide share an entry: one evicts the other, which is
 * then re-read (a cost, never a stale answer: the full hash is compared).
 * A real relation whose OID equals a tag evicts that entry when invalidated.
 */
#include "api_keys.h"

#include <ctype.h>
#include <sodium.h>

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "crypto.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "json.h"
#include "monitor.h"
#include "redact.h"
#include "statements.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#define API_KEY_RANDOM_BYTES 24
#define API_KEY_PREFIX_CHARS 12
#define API_KEY_CHARS (8 + sodium_base64_ENCODED_LEN(API_KEY_RANDOM_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
#define API_KEY_MAX_BYTES 256
#define API_KEY_NAME_MAX 200
#define API_KEY_HASH_BYTES crypto_hash_sha256_BYTES
#define KEY_CACHE_MAX 4096

/* sdr_creds.api_keys's columns */
enum
{
	AK_ID = 1, AK_ORG_ID, AK_NAME, AK_PREFIX, AK_KEY_HASH, AK_CREATED_AT, AK_EXPIRES_AT, AK_REVOKED_AT
};

typedef struct CachedKey
{
	Oid			tag;			/* key_tag(hash): the hash table's key */
	unsigned char hash[API_KEY_HASH_BYTES];
	pg_uuid_t	org;
	pg_uuid_t	id;
	TimestampTz expires_at;		/* DT_NOEND if none */
	int			slot;			/* its place in key_ring */
	bool		used;			/* used since the clock hand last passed it */
} CachedKey;

/*
 * At most KEY_CACHE_MAX keys a backend (KEY_CACHE_MAX * sizeof(CachedKey)
 * plus the hash table's overhead: see docs/operations.md). When it is full, a
 * new key evicts one entry, chosen by a clock over key_ring: an entry used
 * since the hand last passed is spared once. An entry invalidated leaves a
 * hole in the ring (a slot whose entry is gone or has moved), reused first.
 */
static HTAB *key_cache = NULL;
static Oid	key_ring[KEY_CACHE_MAX];	/* the tag of each slot's entry */
static int	key_ring_len = 0;
static int	key_hand = 0;
static uint64 key_cache_generation = 0;
static bool key_cache_watched = false;	/* key_cache_invalidate registered */

static bytea *
hash_bytea(const unsigned char *hash)
{
	return (bytea *) cstring_to_text_with_len((const char *) hash, API_KEY_HASH_BYTES);
}

static bool
has_key_prefix(const char *key)
{
	return strncmp(key, "sk_live_", 8) == 0 || strncmp(key, "sk_test_", 8) == 0;
}

/*
 * A key's tag: an OID from the first bytes of its hash, at or above
 * FirstNormalObjectId, so that it is never a system catalog's (those are in
 * the relcache init file, whose invalidation costs every backend).
 */
static Oid
key_tag(const unsigned char *hash)
{
	uint32		h;

	memcpy(&h, hash, sizeof(h));
	return FirstNormalObjectId + h % ((uint32) PG_UINT32_MAX - FirstNormalObjectId);
}

/*
 * Sends, at commit, the relcache invalidation of a key's tag.
 * CacheInvalidateRelcache reads only the relation's OID and relisshared.
 */
static void
key_tag_invalidate(const unsigned char *hash)
{
	FormData_pg_class form = {0};
	RelationData rel = {0};

	form.relisshared = false;
	rel.rd_id = key_tag(hash);
	rel.rd_rel = &form;
	CacheInvalidateRelcache(&rel);
}

static void
key_cache_invalidate(Datum arg, Oid relid)
{
	key_cache_generation++;
	if (key_cache == NULL)
		return;
	if (sdr_relid_concerned(REL_API_KEYS, relid))
	{
		hash_destroy(key_cache);
		key_cache = NULL;
		key_ring_len = key_hand = 0;
	}
	else if (relid >= FirstNormalObjectId)
		(void) hash_search(key_cache, &relid, HASH_REMOVE, NULL);
}

/* A free slot of key_ring: a hole, or the slot of the entry it evicts. */
static int
key_cache_slot(void)
{
	for (;;)
	{
		int			slot = key_hand;
		CachedKey  *k = hash_search(key_cache, &key_ring[slot], HASH_FIND, NULL);

		key_hand = (key_hand + 1) % KEY_CACHE_MAX;
		if (k == NULL || k->slot != slot)
			return slot;
		if (k->used)
			k->used = false;
		else
		{
			(void) hash_search(key_cache, &key_ring[slot], HASH_REMOVE, NULL);
			return slot;
		}
	}
}

static void
key_cache_add(const unsigned char *hash, const CachedKey *row)
{
	HASHCTL		ctl = {.keysize = sizeof(Oid), .entrysize = sizeof(CachedKey)};
	Oid			tag = key_tag(hash);
	CachedKey  *k;
	bool		found;
	int			slot = -1;

	if (key_cache == NULL)
	{
		key_cache = hash_create("sdr_creds API keys", 64, &ctl, HASH_ELEM | HASH_BLOBS);
		key_ring_len = key_hand = 0;
	}
	if (hash_search(key_cache, &tag, HASH_FIND, NULL) == NULL)
		slot = key_ring_len < KEY_CACHE_MAX ? key_ring_len++ : key_cache_slot();
	k = hash_search(key_cache, &tag, HASH_ENTER, &found);
	if (!found)
	{
		key_ring[slot] = tag;
		k->slot = slot;
	}
	memcpy(k->hash, hash, API_KEY_HASH_BYTES);
	k->org = row->org;
	k->id = row->id;
	k->expires_at = row->expires_at;
	k->used = false;
}

static CachedKey *
key_cache_find(const unsigned char *hash)
{
	Oid			tag = key_tag(hash);
	CachedKey  *k = key_cache ? hash_search(key_cache, &tag, HASH_FIND, NULL) : NULL;

	return k && memcmp(k->hash, hash, API_KEY_HASH_BYTES) == 0 ? k : NULL;
}

/*
 * Reads an API key's row by hash with a fresh snapshot into *row (org, id,
 * expires_at): KEY_VALID, KEY_UNKNOWN or KEY_REVOKED (expiry is the caller's).
 */
static KeyCheck
api_key_read(const unsigned char *hash, CachedKey *row)
{
	Relation	rel = table_open(sdr_relid(REL_API_KEYS), AccessShareLock);
	Relation	idx = index_open(sdr_relid(REL_API_KEYS_BY_HASH), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyData skey;
	IndexScanDesc scan;
	bool		isnull;
	KeyCheck	found = KEY_UNKNOWN;

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_BYTEAEQ, PointerGetDatum(hash_bytea(hash)));
	scan = index_beginscan(rel, idx, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		Datum		d = slot_getattr(slot, AK_EXPIRES_AT, &isnull);

		row->expires_at = isnull ? DT_NOEND : DatumGetTimestampTz(d);
		row->org = *DatumGetUUIDP(slot_getattr(slot, AK_ORG_ID, &isnull));
		row->id = *DatumGetUUIDP(slot_getattr(slot, AK_ID, &isnull));
		(void) slot_getattr(slot, AK_REVOKED_AT, &isnull);
		found = isnull ? KEY_VALID : KEY_REVOKED;
	}
	index_endscan(scan);
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

KeyCheck
api_key_verify(const char *key, pg_uuid_t *org, pg_uuid_t *id)
{
	size_t		len = strlen(key);
	unsigned char hash[API_KEY_HASH_BYTES];
	TimestampTz now = GetCurrentTimestamp();
	CachedKey	row;
	CachedKey  *cached;
	uint64		generation;
	KeyCheck	check;

	if (len > API_KEY_MAX_BYTES || !has_key_prefix(key))
		return KEY_UNKNOWN;
	crypto_hash_sha256(hash, (const unsigned char *) key, len);

	sdr_relcache_watch(key_cache_invalidate, &key_cache_watched);
	AcceptInvalidationMessages();
	cached = key_cache_find(hash);
	if (cached)
	{
		cached->used = true;
		row = *cached;
	}
	else
	{
		generation = key_cache_generation;
		check = api_key_read(hash, &row);
		if (check != KEY_VALID)
			return check;
		if (generation == key_cache_generation && row.expires_at > now)
			key_cache_add(hash, &row);
	}
	if (row.expires_at <= now)
		return KEY_EXPIRED;
	*org = row.org;
	*id = row.id;
	return KEY_VALID;
}

void
api_key_prefix(const char *key, char *out, size_t size)
{
	size_t		n = 0;

	if (has_key_prefix(key))
		while (n < API_KEY_PREFIX_CHARS && n + 1 < size && key[n] != '\0' &&
			   (key[n] == '_' || key[n] == '-' || isalnum((unsigned char) key[n])))
			n++;
	if (n < API_KEY_PREFIX_CHARS)
		strlcpy(out, "unknown", size);
	else
	{
		memcpy(out, key, n);
		out[n] = '\0';
	}
}

/* Makes a new key (API_KEY_CHARS + 1 bytes with its NUL) and its hash. */
static void
api_key_generate(const char *env, char *key, unsigned char *hash)
{
	unsigned char rnd[API_KEY_RANDOM_BYTES];

	snprintf(key, 9, "sk_%s_", env);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2base64(key + 8, API_KEY_CHARS + 1 - 8, rnd, sizeof(rnd),
					  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(rnd, sizeof(rnd));
	crypto_hash_sha256(hash, (const unsigned char *) key, strlen(key));
}

/* create_api_key's result: the key, shown this once, with its row's fields. */
static text *
api_key_json(const pg_uuid_t *id, const pg_uuid_t *org, text *name, const char *key,
			 const TimestampTz *expires_at)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"id\": ");
	append_uuid(&out, id);
	appendStringInfoString(&out, ", \"org_id\": ");
	append_uuid(&out, org);
	appendStringInfoString(&out, ", \"name\": ");
	append_json_string(&out, VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
	appendStringInfoString(&out, ", \"prefix\": ");
	append_json_string(&out, key, API_KEY_PREFIX_CHARS);
	appendStringInfoString(&out, ", \"key\": ");
	append_json_string(&out, key, strlen(key));
	appendStringInfoString(&out, ", \"expires_at\": ");
	if (expires_at)
		append_timestamp(&out, *expires_at);
	else
		appendStringInfoString(&out, "null");
	appendStringInfoChar(&out, '}');
	return cstring_to_text_with_len(out.data, out.len);
}

static void
check_new_key_args(const char *env, text *name, const TimestampTz *expires_at)
{
	if (strcmp(env, "live") != 0 && strcmp(env, "test") != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("environment must be 'live' or 'test'")));
	if (VARSIZE_ANY_EXHDR(name) > API_KEY_NAME_MAX)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("name must be at most %d bytes", API_KEY_NAME_MAX)));
	if (expires_at && (TIMESTAMP_NOT_FINITE(*expires_at) ||
					   *expires_at <= GetCurrentTransactionStartTimestamp()))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("expires_at must be a finite time in the future (NULL: never expires)")));
}

PG_FUNCTION_INFO_V1(sdr_creds_create_api_key);
Datum
sdr_creds_create_api_key(PG_FUNCTION_ARGS)
{
	const char *env = PG_ARGISNULL(3) ? "live" : text_to_cstring(PG_GETARG_TEXT_PP(3));
	text	   *name = PG_ARGISNULL(1) ? cstring_to_text("") : PG_GETARG_TEXT_PP(1);
	TimestampTz expires = PG_ARGISNULL(2) ? 0 : PG_GETARG_TIMESTAMPTZ(2);
	TimestampTz *expires_at = PG_ARGISNULL(2) ? NULL : &expires;
	char		key[API_KEY_CHARS + 1];
	unsigned char hash[API_KEY_HASH_BYTES];
	pg_uuid_t	id;
	pg_uuid_t  *org;
	Datum		args[6];
	char		nulls[6] = "     n";
	text	   *result;

	monitor_call_begin(ACT_CREATE_API_KEY);
	monitor_call_as_admin();
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("org_id must not be null")));
	org = PG_GETARG_UUID_P(0);
	monitor_call_org(org);
	check_new_key_args(env, name, expires_at);
	redact_activity();
	api_key_generate(env, key, hash);
	new_uuid(&id);

	args[0] = UUIDPGetDatum(&id);
	args[1] = UUIDPGetDatum(org);
	args[2] = PointerGetDatum(name);
	args[3] = PointerGetDatum(cstring_to_text_with_len(key, API_KEY_PREFIX_CHARS));
	args[4] = PointerGetDatum(hash_bytea(hash));
	args[5] = TimestampTzGetDatum(expires);
	if (expires_at)
		nulls[5] = ' ';
	SPI_connect();
	stmt_run(S_API_KEY_INSERT, args, nulls, false, 0);
	SPI_finish();

	result = api_key_json(&id, org, name, key, expires_at);
	sodium_memzero(key, sizeof(key));
	monitor_call_key(&id);
	monitor_call_end();
	PG_RETURN_TEXT_P(result);
}

/* An UPDATE that revoked a key, however it was made, is reported (monitor.c). */
static void
report_revocation(TriggerData *trigdata)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	bool		was_null;
	bool		is_null;
	bool		isnull;

	(void) heap_getattr(trigdata->tg_trigtuple, AK_REVOKED_AT, desc, &was_null);
	(void) heap_getattr(trigdata->tg_newtuple, AK_REVOKED_AT, desc, &is_null);
	if (!was_null || is_null)
		return;
	monitor_call_begin(ACT_REVOKE_API_KEY);
	monitor_call_as_admin();
	monitor_call_org(DatumGetUUIDP(heap_getattr(trigdata->tg_newtuple, AK_ORG_ID, desc, &isnull)));
	monitor_call_key(DatumGetUUIDP(heap_getattr(trigdata->tg_newtuple, AK_ID, desc, &isnull)));
	monitor_call_end();
}

/* The key hash of a row of sdr_creds.api_keys. */
static const unsigned char *
row_key_hash(HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, AK_KEY_HASH, desc, &isnull);
	bytea	   *b;

	if (isnull)
		return NULL;
	b = DatumGetByteaPP(d);
	return VARSIZE_ANY_EXHDR(b) == API_KEY_HASH_BYTES ? (const unsigned char *) VARDATA_ANY(b) : NULL;
}

/*
 * Trigger on sdr_creds.api_keys (per row, and per statement for TRUNCATE): an
 * UPDATE or DELETE drops its key (old and new hash) from every backend's key
 * cache when it commits; an INSERT sends nothing (a key that was not there
 * was cached nowhere: only valid keys are cached); a TRUNCATE, or a row
 * without a well-formed hash, empties every backend's key cache.
 */
PG_FUNCTION_INFO_V1(sdr_creds_api_keys_changed);
Datum
sdr_creds_api_keys_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	const unsigned char *old_hash;
	const unsigned char *new_hash = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		return sdr_trigger_result(sdr_invalidating_trigger(fcinfo, "sdr_creds.api_keys_changed()"));
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		return sdr_trigger_result(trigdata);
	desc = RelationGetDescr(trigdata->tg_relation);
	old_hash = row_key_hash(trigdata->tg_trigtuple, desc);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		new_hash = row_key_hash(trigdata->tg_newtuple, desc);
	if (old_hash == NULL || (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && new_hash == NULL))
		(void) sdr_invalidating_trigger(fcinfo, "sdr_creds.api_keys_changed()");
	else
	{
		key_tag_invalidate(old_hash);
		if (new_hash && memcmp(old_hash, new_hash, API_KEY_HASH_BYTES) != 0)
			key_tag_invalidate(new_hash);
	}
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		report_revocation(trigdata);
	return sdr_trigger_result(trigdata);
}
