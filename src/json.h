/*
 * json.h: the credential object as JSON; jsonb parsing and printing.
 */
#ifndef SDR_JSON_H
#define SDR_JSON_H

#include "sdr_creds.h"

#include "lib/stringinfo.h"

typedef struct Credential
{
	pg_uuid_t  *id;
	pg_uuid_t  *org_id;
	text	   *provider;
	text	   *dsn;			/* may be NULL */
	const char *access_token;
	const char *plain_metadata;	/* JSON object text */
	const char *secret_metadata;	/* JSON object text, or NULL to leave it out */
	TimestampTz created_at;
	TimestampTz updated_at;
} Credential;

extern void append_credential_json(StringInfo out, const Credential *c);
extern void append_uuid(StringInfo out, const pg_uuid_t *uuid);
extern void append_timestamp(StringInfo out, TimestampTz t);
extern void append_json_string(StringInfo out, const char *s, int len);

extern char *jsonb_text(Jsonb *j);
extern Jsonb *parse_jsonb(const char *s);
extern Jsonb *try_parse_jsonb(const char *s);

#endif
