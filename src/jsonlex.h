/*
 * jsonlex.h: running PostgreSQL's JSON lexer (common/jsonapi.h), which never
 * throws, over a buffer with semantic callbacks, in the backend and in
 * frontend programs alike (jwt.c and jwk.c, and their fuzzers).
 */
#ifndef SDR_JSONLEX_H
#define SDR_JSONLEX_H

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

/* A semantic callback's type and its return, as they are in this PostgreSQL version. */
#if PG_VERSION_NUM >= 160000
#define CALLBACK JsonParseErrorType
#define DONE return JSON_SUCCESS
#else
#define CALLBACK void
#define DONE return
#endif

/*
 * Parses json[0..len) with sem; *lex is the lexer while the callbacks run
 * (they read its lex_level) and NULL after. True if it is valid JSON.
 */
static inline bool
json_parse_with(const char *json, size_t len, JsonSemAction *sem, JsonLexContext **lex)
{
	JsonParseErrorType rc;

#if PG_VERSION_NUM >= 170000
	*lex = makeJsonLexContextCstringLen(NULL, json, len, PG_UTF8, true);
#else
	*lex = makeJsonLexContextCstringLen((char *) json, (int) len, PG_UTF8, true);
#endif
	rc = pg_parse_json(*lex, sem);
#if PG_VERSION_NUM >= 170000
	freeJsonLexContext(*lex);
#else
	if ((*lex)->strval)
	{
		pfree((*lex)->strval->data);
		pfree((*lex)->strval);
	}
	pfree(*lex);
#endif
	*lex = NULL;
	return rc == JSON_SUCCESS;
}

#endif
