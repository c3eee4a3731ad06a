/*
 * settings.c: the extension's settings, read by the files that use them
 * (keyring.c, auth.c, monitor.c, oauth_clients.c) and defined by settings_init() from _PG_init.
 */
#include "sdr_creds.h"

#include "settings.h"
#include "utils/guc.h"

char	   *sdr_keyring_file = NULL;
char	   *sdr_jwt_secret = NULL;
char	   *sdr_jwt_audience = NULL;
char	   *sdr_outbound_hosts = NULL;
int			sdr_audit = AUDIT_WRITES;

static const struct config_enum_entry audit_levels[] = {
	{"none", AUDIT_NONE, false},
	{"writes", AUDIT_WRITES, false},
	{"all", AUDIT_ALL, false},
	{NULL, 0, false}
};

void
settings_init(void)
{
	DefineCustomStringVariable("sdr_creds.keyring_file",
							   "Path of the keyring file (one \"version hex-key\" per line).",
							   "Keep it outside the data directory, readable only by the server.",
							   &sdr_keyring_file, NULL, PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomStringVariable("sdr_creds.jwt_secret",
							   "HS256 secret for Bearer JWTs (at least 32 bytes); empty disables JWTs.",
							   NULL, &sdr_jwt_secret, NULL, PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("sdr_creds.jwt_audience",
							   "When set, JWTs must carry this aud claim.",
							   NULL, &sdr_jwt_audience, NULL, PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomStringVariable("sdr_creds.outbound_hosts",
							   "Host patterns token URLs may name (*.salesforce.com, api.hubapi.com); empty: any.",
							   "Comma-separated; *.example.com matches any name ending in .example.com.",
							   &sdr_outbound_hosts, "", PGC_SUSET, GUC_LIST_INPUT, NULL, NULL, NULL);
	DefineCustomEnumVariable("sdr_creds.audit",
							 "Which API calls write an audit line to the server log.",
							 "none; writes (stores, deletes, key administration, and every failed "
							 "authentication or cross-org access); all (also every read).",
							 &sdr_audit, AUDIT_WRITES, audit_levels, PGC_SUSET, 0, NULL, NULL, NULL);
}
