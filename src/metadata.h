/*
 * metadata.h: which metadata keys are secret, and splitting metadata into its
 * plain and secret parts.
 */
#ifndef SDR_METADATA_H
#define SDR_METADATA_H

#include "sdr_creds.h"

#include "utils/jsonb.h"

/* Whether a top-level metadata key names a secret. */
extern bool is_secret_key(const char *key, int len);

/* Splits a metadata object into its plain and its secret top-level keys. */
extern void split_metadata(Jsonb *metadata, Jsonb **plain, Jsonb **secret);

/*
 * The object with its top-level key set to value (a scalar), or removed when
 * value is NULL; the object itself when there is nothing to remove.
 */
extern Jsonb *metadata_set(Jsonb *metadata, const char *key, const JsonbValue *value);

#endif
