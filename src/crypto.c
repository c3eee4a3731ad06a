/*
 * crypto.c: seals and opens a credential's secrets; makes random UUIDs.
 *
 * The plaintext is the access token, a NUL byte, then the secret metadata
 * (a JSON object's text).
 *
 * A sealed value is nonce (24 random bytes) || ciphertext+tag, made with
 * crypto_aead_xchacha20poly1305_ietf under a keyring key. The additional data
 * binds it to its row: a format tag, id, org_id, key version and provider, so
 * a ciphertext copied to another row, org, provider or version fails to open;
 * from format 2 on, also a BLAKE2b hash of the dsn and the plain metadata, so
 * a row whose dsn or plain metadata changed fails to open.
 */
#include "crypto.h"

#include "keyring.h"

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define AAD_TAG_1 "sdr_creds/1"
#define AAD_TAG_2 "sdr_creds/2"
#define AAD_TAG_OAUTH_CLIENT "sdr_creds/c"
#define AAD_HASH_BYTES crypto_generichash_BYTES
#define AAD_MAX (sizeof(AAD_TAG_1) + 2 * UUID_LEN + 4 + 64 + AAD_HASH_BYTES)


static void pg_attribute_noreturn()
undecryptable(void)
{
	ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg(MSG_UNDECRYPTABLE), errhidestmt(true)));
}

/* BLAKE2b of the dsn (length-prefixed, or a null marker) and the plain metadata text. */
static void
plain_fields_hash(const RowIdentity *row, unsigned char *out)
{
	crypto_generichash_state st;
	unsigned char len[4] = {0xff, 0xff, 0xff, 0xff};
	size_t		dlen = row->dsn ? VARSIZE_ANY_EXHDR(row->dsn) : 0;

	if (row->dsn)
	{
		len[0] = (unsigned char) (dlen >> 24);
		len[1] = (unsigned char) (dlen >> 16);
		len[2] = (unsigned char) (dlen >> 8);
		len[3] = (unsigned char) dlen;
	}
	crypto_generichash_init(&st, NULL, 0, AAD_HASH_BYTES);
	crypto_generichash_update(&st, len, sizeof(len));
	if (row->dsn)
		crypto_generichash_update(&st, (const unsigned char *) VARDATA_ANY(row->dsn), dlen);
	crypto_generichash_update(&st, (const unsigned char *) row->plain_metadata,
							  strlen(row->plain_metadata));
	crypto_generichash_final(&st, out, AAD_HASH_BYTES);
}

static size_t
make_aad(unsigned char *aad, const RowIdentity *row, int32 key_version)
{
	size_t		n = 0;
	size_t		plen = Min(row->provider_len, 64);

	StaticAssertStmt(sizeof(AAD_TAG_1) == sizeof(AAD_TAG_2) &&
					 sizeof(AAD_TAG_1) == sizeof(AAD_TAG_OAUTH_CLIENT), "tags of one length");
	if (row->format != SEAL_FORMAT_1 && row->format != SEAL_FORMAT_2 &&
		row->format != SEAL_FORMAT_OAUTH_CLIENT)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED), errmsg(MSG_UNDECRYPTABLE),
				 errdetail("Unknown sealed format %d.", row->format), errhidestmt(true)));
	memcpy(aad, row->format == SEAL_FORMAT_1 ? AAD_TAG_1 :
		   row->format == SEAL_FORMAT_2 ? AAD_TAG_2 : AAD_TAG_OAUTH_CLIENT, sizeof(AAD_TAG_1));
	n += sizeof(AAD_TAG_1);
	memcpy(aad + n, row->id->data, UUID_LEN);
	n += UUID_LEN;
	memcpy(aad + n, row->org->data, UUID_LEN);
	n += UUID_LEN;
	aad[n++] = (unsigned char) (key_version >> 24);
	aad[n++] = (unsigned char) (key_version >> 16);
	aad[n++] = (unsigned char) (key_version >> 8);
	aad[n++] = (unsigned char) key_version;
	memcpy(aad + n, row->provider, plen);
	n += plen;
	if (row->format != SEAL_FORMAT_1)
	{
		plain_fields_hash(row, aad + n);
		n += AAD_HASH_BYTES;
	}
	return n;
}

static bytea *
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
static char *
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
		undecryptable();

	aadlen = make_aad(aad, row, key_version);
	plain = palloc(sealed_len - NONCE_BYTES - TAG_BYTES + 1);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL,
												   data + NONCE_BYTES, sealed_len - NONCE_BYTES,
												   aad, aadlen, data, key) != 0)
		undecryptable();
	plain[plen] = '\0';
	*len = plen;
	return (char *) plain;
}

bytea *
seal_credential(const RowIdentity *row, const char *token, const char *secret_metadata,
				int32 *key_version)
{
	size_t		toklen = strlen(token);
	size_t		len = toklen + 1 + strlen(secret_metadata);
	char	   *plain = palloc(len + 1);
	bytea	   *sealed;

	memcpy(plain, token, toklen + 1);
	strcpy(plain + toklen + 1, secret_metadata);
	sealed = seal_secrets(row, plain, len, key_version);
	sodium_memzero(plain, len);
	pfree(plain);
	return sealed;
}

char *
open_credential(const RowIdentity *row, int32 key_version, const bytea *sealed,
				size_t *len, char **secret_metadata)
{
	char	   *plain = open_secrets(row, key_version, sealed, len);
	size_t		toklen = strnlen(plain, *len);

	if (toklen == *len)
		undecryptable();
	*secret_metadata = plain + toklen + 1;
	return plain;
}

void
new_uuid(pg_uuid_t *uuid)
{
	randombytes_buf(uuid->data, UUID_LEN);
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
}
