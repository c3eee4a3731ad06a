/*
 * crypto.h: sealing and opening a row's secrets with XChaCha20-Poly1305, and
 * random identifiers.
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

/*
 * An OAuth client's secret (oauth_clients, from 1.1): bound like format 2
 * under its own tag, dsn being the token URL and plain_metadata the client
 * id, auth method and scopes, so it never opens as a credential's secrets
 * nor with another token URL.
 */
#define SEAL_FORMAT_OAUTH_CLIENT 3

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

/*
 * A credential's secrets are its access token and its secret metadata (a
 * JSON object's text), sealed together as "token NUL metadata".
 */
extern bytea *seal_credential(const RowIdentity *row, const char *token,
							  const char *secret_metadata, int32 *key_version);

/*
 * Opens them: returns the plaintext (the token, NUL-terminated), sets
 * *secret_metadata to the metadata inside it and *len to its size; the caller
 * wipes it (sodium_memzero) when done. XX001 on any failure.
 */
extern char *open_credential(const RowIdentity *row, int32 key_version, const bytea *sealed,
							 size_t *len, char **secret_metadata);

/* A random (version 4) UUID. */
extern void new_uuid(pg_uuid_t *uuid);

#endif
