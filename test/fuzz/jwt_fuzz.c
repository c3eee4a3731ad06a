/*
 * jwt_fuzz.c: libFuzzer harness for jwt_verify (src/jwt.c).
 *
 * Input byte 0 picks a mode. Mode 0: the rest is a raw token. Mode 1: the
 * rest is "header-json \n payload-json"; the harness encodes and signs them
 * with the test secret so the claim parser behind the signature is reached.
 * Properties checked: no crash or sanitizer report; an accepted token is
 * accepted again with the same org, and refused once its signature is
 * changed or truncated.
 */
#include "postgres_fe.h"

#include <sodium.h>

#include "../../src/jwt.h"

static const char secret[] = "fuzz-secret-0123456789abcdef0123456789";

static char *
b64(const unsigned char *data, size_t len)
{
	size_t		n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char	   *out = malloc(n);

	sodium_bin2base64(out, n, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

static void
check_signed(const unsigned char *data, size_t size)
{
	const unsigned char *nl = memchr(data, '\n', size);
	size_t		hlen = nl ? (size_t) (nl - data) : size;
	const unsigned char *payload = nl ? nl + 1 : data + size;
	size_t		plen = nl ? size - hlen - 1 : 0;
	char	   *h = b64(data, hlen);
	char	   *p = b64(payload, plen);
	size_t		signed_len = strlen(h) + 1 + strlen(p);
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char	   *sig;
	char	   *token = malloc(signed_len + 64);
	unsigned char org[16];

	snprintf(token, signed_len + 1, "%s.%s", h, p);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *) secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) token, signed_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sig = b64(mac, sizeof(mac));
	token[signed_len] = '.';
	strcpy(token + signed_len + 1, sig);

	if (jwt_verify(token, strlen(token), secret, strlen(secret), NULL, 1.0e9, org, NULL))
	{
		unsigned char again[16];
		size_t		last = strlen(token) - 1;

		/* Deterministic, and the signature really counts. */
		if (!jwt_verify(token, strlen(token), secret, strlen(secret), NULL, 1.0e9, again, NULL) ||
			memcmp(org, again, sizeof(org)) != 0)
			abort();
		token[last] = (token[last] == 'A') ? 'B' : 'A';
		if (jwt_verify(token, strlen(token), secret, strlen(secret), NULL, 1.0e9, again, NULL))
			abort();
		token[last - 2] = '\0';
		if (jwt_verify(token, strlen(token), secret, strlen(secret), NULL, 1.0e9, again, NULL))
			abort();
	}
	free(h);
	free(p);
	free(sig);
	free(token);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char org[16];

	if (size < 1 || size > 16384)
		return 0;
	if (sodium_init() < 0)
		abort();
	if (data[0] & 1)
		check_signed(data + 1, size - 1);
	else
	{
		char	   *token = malloc(size);

		memcpy(token, data + 1, size - 1);
		token[size - 1] = '\0';
		(void) jwt_verify(token, size - 1, secret, strlen(secret), "aud", 1.0e9, org, NULL);
		free(token);
	}
	return 0;
}
