/*
 * crypto.c: seals and opens a credential's secrets.
 *
 * A sealed value is nonce (24 random bytes) || ciphertext+tag, made with
 * crypto_aead_xchacha20poly1305_ietf under a keyring key. The additional data
 * binds it to its row: a format tag, id, org_id, key version and provider, so
 * a ciphertext copied to another row, org, provider or version fails to open.
 */
#include "crypto.h"

#include "keyring.h"

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define AAD_TAG "sdr_creds/1"
#define AAD_MAX (sizeof(AAD_TAG) + 2 * UUID_LEN + 4 + 64)

#define MSG_UNDECRYPTABLE "credential could not be decrypted: wrong key or corrupt data"

static size_t
make_aad(unsigned char *aad, const RowIdentity *row, int32 key_version)
{
	size_t		n = 0;
	size_t		plen = Min(row->provider_len, 64);

	memcpy(aad, AAD_TAG, sizeof(AAD_TAG));
	n += sizeof(AAD_TAG);
	memcpy(aad + n, row->id->data, UUID_LEN);
	n += UUID_LEN;
	memcpy(aad + n, row->org->data, UUID_LEN);
	n += UUID_LEN;
	aad[n++] = (unsigned char) (key_version >> 24);
	aad[n++] = (unsigned char) (key_version >> 16);
	aad[n++] = (unsigned char) (key_version >> 8);
	aad[n++] = (unsigned char) key_version;
	memcpy(aad + n, row->provider, plen);
	return n + plen;
}

bytea *
seal_secrets(const RowIdentity *row, const void *plain, size_t len, int32 *key_version)
{
	const unsigned char *key = keyring_newest(key_version);
	unsigned char aad[AAD_MAX];
	size_t		aadlen = make_aad(aad, row, *key_version);
	bytea	   *out = palloc(VARHDRSZ + NONCE_BYTES + len + TAG_BYTES);
	unsigned char *nonce = (unsigned char *) VARDATA(out);
	unsigned long long ctlen;

	randombytes_buf(nonce, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + NONCE_BYTES, &ctlen, plain, len,
											   aad, aadlen, NULL, nonce, key);
	SET_VARSIZE(out, VARHDRSZ + NONCE_BYTES + ctlen);
	return out;
}

/* The plaintext, palloc'd and NUL-terminated; the caller wipes it when done. */
void *
open_secrets(const RowIdentity *row, int32 key_version, const bytea *sealed, size_t *len)
{
	const unsigned char *key = keyring_key(key_version);
	const unsigned char *data = (const unsigned char *) VARDATA_ANY(sealed);
	size_t		sealed_len = VARSIZE_ANY_EXHDR(sealed);
	unsigned char aad[AAD_MAX];
	size_t		aadlen;
	unsigned char *plain;
	unsigned long long plen;

	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg(MSG_UNDECRYPTABLE),
				 errdetail("Key version %d is not in the keyring.", key_version),
				 errhidestmt(true)));
	if (sealed_len < NONCE_BYTES + TAG_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED), errmsg(MSG_UNDECRYPTABLE), errhidestmt(true)));

	aadlen = make_aad(aad, row, key_version);
	plain = palloc(sealed_len - NONCE_BYTES - TAG_BYTES + 1);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL,
												   data + NONCE_BYTES, sealed_len - NONCE_BYTES,
												   aad, aadlen, data, key) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED), errmsg(MSG_UNDECRYPTABLE), errhidestmt(true)));
	plain[plen] = '\0';
	*len = plen;
	return plain;
}
