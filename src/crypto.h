/*
 * crypto.h: sealing and opening a row's secrets with XChaCha20-Poly1305.
 */
#ifndef SDR_CRYPTO_H
#define SDR_CRYPTO_H

#include "sdr_creds.h"

/*
 * Sealed formats: 1 (sdr_creds 1.0) binds a ciphertext to id, org, provider
 * and key version; 2 (from 1.1) also to a hash of dsn and plain metadata, so
 * a row whose dsn or instance_url was changed outside the extension fails to
 * open.
 */
#define SEAL_FORMAT_1 1
#define SEAL_FORMAT_2 2

/* What a ciphertext is bound to (its additional data, with the key version). */
typedef struct RowIdentity
{
	int			format;			/* SEAL_FORMAT_* */
	const pg_uuid_t *id;
	const pg_uuid_t *org;
	const char *provider;
	size_t		provider_len;
	const text *dsn;			/* format 2: may be NULL */
	const char *plain_metadata; /* format 2: the plain metadata object's text */
} RowIdentity;

extern bytea *seal_secrets(const RowIdentity *row, const void *plain, size_t len,
						   int32 *key_version);
extern void *open_secrets(const RowIdentity *row, int32 key_version,
						  const bytea *sealed, size_t *len);

#endif
