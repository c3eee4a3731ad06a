/*
 * kept.c: token endpoint answers kept in memory until a primary takes them
 * (kept.h). A fixed table of KEPT_MAX entries: credential id, the SHA-256 of
 * the refresh token sent, the answer (its body holds the new tokens: wiped
 * when dropped), and when it was kept.
 */
#define _GNU_SOURCE
#include "kept.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "log.h"

typedef struct Kept
{
	char		id[37];			/* a uuid; "" when the entry is free */
	unsigned char hash[KEPT_HASH_BYTES];
	RefreshAnswer answer;
	double		at_ms;
} Kept;

static Kept kept[KEPT_MAX];

/* Wipes and frees an entry. */
static void
drop(Kept *k)
{
	http_answer_free(&k->answer);
	explicit_bzero(k, sizeof(*k));
}

/* Drops the entries kept longer than KEPT_TTL_MS. */
static void
expire(void)
{
	double		now = now_ms();

	for (int i = 0; i < KEPT_MAX; i++)
		if (kept[i].id[0] != '\0' && now - kept[i].at_ms > KEPT_TTL_MS)
		{
			rlog("refresh credential=%s: the kept answer expired unstored (after %.0f s)",
				 kept[i].id, KEPT_TTL_MS / 1000);
			drop(&kept[i]);
		}
}

void
kept_hash(const char *refresh_token, unsigned char hash[KEPT_HASH_BYTES])
{
	memset(hash, 0, KEPT_HASH_BYTES);
	if (refresh_token != NULL && sodium_init() >= 0)
		crypto_hash_sha256(hash, (const unsigned char *) refresh_token, strlen(refresh_token));
}

void
kept_put(const char *credential_id, const unsigned char hash[KEPT_HASH_BYTES], RefreshAnswer *a)
{
	Kept	   *k = NULL;

	expire();
	for (int i = 0; i < KEPT_MAX; i++)
	{
		if (strcmp(kept[i].id, credential_id) == 0)
		{
			drop(&kept[i]);		/* a newer answer for the same credential */
			k = &kept[i];
			break;
		}
		if (kept[i].id[0] == '\0' && k == NULL)
			k = &kept[i];
	}
	if (k == NULL)
	{
		k = &kept[0];
		for (int i = 1; i < KEPT_MAX; i++)
			if (kept[i].at_ms < k->at_ms)
				k = &kept[i];
		rlog("refresh credential=%s: the kept answer dropped unstored (%d kept already)", k->id, KEPT_MAX);
		drop(k);
	}
	snprintf(k->id, sizeof(k->id), "%s", credential_id);
	memcpy(k->hash, hash, KEPT_HASH_BYTES);
	k->answer = *a;
	k->at_ms = now_ms();
	a->body = NULL;
	a->len = 0;
}

bool
kept_take(const char *credential_id, const unsigned char hash[KEPT_HASH_BYTES], RefreshAnswer *a)
{
	expire();
	for (int i = 0; i < KEPT_MAX; i++)
	{
		if (kept[i].id[0] == '\0' || strcmp(kept[i].id, credential_id) != 0)
			continue;
		if (sodium_memcmp(kept[i].hash, hash, KEPT_HASH_BYTES) != 0)
		{
			rlog("refresh credential=%s: the kept answer dropped: the credential's refresh token "
				 "changed meanwhile", credential_id);
			drop(&kept[i]);
			return false;
		}
		*a = kept[i].answer;
		kept[i].answer.body = NULL;
		kept[i].answer.len = 0;
		drop(&kept[i]);
		return true;
	}
	return false;
}

size_t
kept_count(void)
{
	size_t		n = 0;

	for (int i = 0; i < KEPT_MAX; i++)
		n += kept[i].id[0] != '\0';
	return n;
}

size_t
kept_clear(void)
{
	size_t		n = kept_count();

	for (int i = 0; i < KEPT_MAX; i++)
		if (kept[i].id[0] != '\0')
			drop(&kept[i]);
	return n;
}
