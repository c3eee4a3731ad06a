/*
 * metadata.c: the secret-metadata policy. The top-level keys refresh_token,
 * client_secret, id_token, password, private_key and any key ending in
 * _token, _secret, _password or _key (any case) are secret: sealed with the
 * access token and left out of listings. Every other key is plain. Also:
 * setting or removing one top-level key.
 */
#include "metadata.h"

static const char *const secret_names[] = {
	"refresh_token", "client_secret", "id_token", "password", "private_key"
};
static const char *const secret_suffixes[] = {"_token", "_secret", "_password", "_key"};

static bool
ends_with(const char *s, int len, const char *suffix)
{
	int			n = strlen(suffix);

	return len >= n && pg_strncasecmp(s + len - n, suffix, n) == 0;
}

bool
is_secret_key(const char *key, int len)
{
	for (size_t i = 0; i < lengthof(secret_names); i++)
		if (len == (int) strlen(secret_names[i]) && pg_strncasecmp(key, secret_names[i], len) == 0)
			return true;
	for (size_t i = 0; i < lengthof(secret_suffixes); i++)
		if (ends_with(key, len, secret_suffixes[i]))
			return true;
	return false;
}

void
split_metadata(Jsonb *metadata, Jsonb **plain, Jsonb **secret)
{
	JsonbParseState *ps = NULL;
	JsonbParseState *ss = NULL;
	JsonbIterator *it = JsonbIteratorInit(&metadata->root);
	JsonbIteratorToken tok;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *p;
	JsonbValue *s;

	pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&ss, WJB_BEGIN_OBJECT, NULL);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		JsonbParseState **target;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		target = is_secret_key(k.val.string.val, k.val.string.len) ? &ss : &ps;
		pushJsonbValue(target, WJB_KEY, &k);
		pushJsonbValue(target, WJB_VALUE, &v);
	}
	p = pushJsonbValue(&ps, WJB_END_OBJECT, NULL);
	s = pushJsonbValue(&ss, WJB_END_OBJECT, NULL);
	*plain = JsonbValueToJsonb(p);
	*secret = JsonbValueToJsonb(s);
}


Jsonb *
metadata_set(Jsonb *metadata, const char *key, const JsonbValue *value)
{
	JsonbParseState *ps = NULL;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	k;
	JsonbValue	v;
	int			keylen = strlen(key);

	if (value == NULL && !getKeyJsonValueFromContainer(&metadata->root, key, keylen, &v))
		return metadata;
	it = JsonbIteratorInit(&metadata->root);
	pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		if (k.val.string.len == keylen && memcmp(k.val.string.val, key, keylen) == 0)
			continue;
		pushJsonbValue(&ps, WJB_KEY, &k);
		pushJsonbValue(&ps, WJB_VALUE, &v);
	}
	if (value != NULL)
	{
		k.type = jbvString;
		k.val.string.val = (char *) key;
		k.val.string.len = keylen;
		pushJsonbValue(&ps, WJB_KEY, &k);
		pushJsonbValue(&ps, WJB_VALUE, unconstify(JsonbValue *, value));
	}
	return JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, NULL));
}
