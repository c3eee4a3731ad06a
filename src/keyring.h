/*
 * keyring.h: the keyring file's keys, by version, in libsodium-guarded memory.
 */
#ifndef SDR_KEYRING_H
#define SDR_KEYRING_H

#include <sodium.h>

#define KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES

/* The newest key; *version receives its version. Errors if there is no keyring. */
extern const unsigned char *keyring_newest(int32 *version);

/* The key of a version, or NULL if the keyring has no such version. */
extern const unsigned char *keyring_key(int32 version);

#endif
