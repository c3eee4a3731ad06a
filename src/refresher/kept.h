/*
 * kept.h: token endpoint answers the database could not take. A refresh
 * whose answer arrived while no primary was reachable (the record or its
 * COMMIT failed) is kept here, in memory only, so the refresher stores it
 * once a primary takes it again instead of sending the spent refresh token
 * a second time (providers that rotate refresh tokens answer invalid_grant).
 * It is stored only if the credential still holds the refresh token that was
 * sent (compared by SHA-256), and dropped after KEPT_TTL_MS; never logged.
 */
#ifndef SDR_REFRESHER_KEPT_H
#define SDR_REFRESHER_KEPT_H

#include <stdbool.h>
#include <stddef.h>

#include "oauth.h"

#define KEPT_MAX 16				/* answers kept at once; the oldest goes first */
#define KEPT_TTL_MS (15 * 60 * 1000.0)
#define KEPT_HASH_BYTES 32

/* The SHA-256 of a refresh token (NULL: all zeros). */
void		kept_hash(const char *refresh_token, unsigned char hash[KEPT_HASH_BYTES]);

/*
 * Keeps a successful answer for the credential, taking its body (a->body is
 * NULL afterwards); hash: of the refresh token the request sent.
 */
void		kept_put(const char *credential_id, const unsigned char hash[KEPT_HASH_BYTES], RefreshAnswer *a);

/*
 * The answer kept for the credential, if any, given up by the store: true
 * (and *a filled in, freed with http_answer_free) if the credential still
 * holds the refresh token it answered (hash) and it has not expired; a kept
 * answer that does not match is wiped (logged without any token).
 */
bool		kept_take(const char *credential_id, const unsigned char hash[KEPT_HASH_BYTES], RefreshAnswer *a);

/* Answers kept now. */
size_t		kept_count(void);

/* Wipes every kept answer (at exit); how many there were. */
size_t		kept_clear(void);

#endif
