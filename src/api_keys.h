/*
 * api_keys.h: API keys: creating them, and verifying a presented key.
 */
#ifndef SDR_API_KEYS_H
#define SDR_API_KEYS_H

#include "sdr_creds.h"

typedef enum
{
	KEY_VALID, KEY_UNKNOWN, KEY_REVOKED, KEY_EXPIRED
} KeyCheck;

/* Whether key is a valid API key; when it is, *org and *id are its org and its row's id. */
extern KeyCheck api_key_verify(const char *key, pg_uuid_t *org, pg_uuid_t *id);

/* The display prefix of a presented key (as list_api_keys shows it), or "unknown". */
extern void api_key_prefix(const char *key, char *out, size_t size);

#endif
