/*
 * crypto.h: sealing and opening a row's secrets with XChaCha20-Poly1305.
 */
#ifndef SDR_CRYPTO_H
#define SDR_CRYPTO_H

#include "sdr_creds.h"

/* What a ciphertext is bound to (its additional data, with the key version). */
typedef struct RowIdentity
{
	const pg_uuid_t *id;
	const pg_uuid_t *org;
	const char *provider;
	size_t		provider_len;
} RowIdentity;

extern bytea *seal_secrets(const RowIdentity *row, const void *plain, size_t len,
						   int32 *key_version);
extern void *open_secrets(const RowIdentity *row, int32 key_version,
						  const bytea *sealed, size_t *len);

#endif
