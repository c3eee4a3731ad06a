/*
 * api_keys.h: API keys: creating them, and verifying a presented key.
 */
#ifndef SDR_API_KEYS_H
#define SDR_API_KEYS_H

#include "sdr_creds.h"

/* True, with the key's org, if key is an API key that is neither revoked nor expired. */
extern bool api_key_verify(const char *key, pg_uuid_t *org);

#endif
