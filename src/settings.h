/*
 * settings.h: the extension's settings (sdr_creds.*), defined here and
 * registered by settings_init() from _PG_init. sdr_creds.usage_max, which
 * sizes shared memory, is usage.c's own.
 */
#ifndef SDR_SETTINGS_H
#define SDR_SETTINGS_H

extern char *sdr_keyring_file;
extern char *sdr_jwt_secret;
extern char *sdr_jwt_audience;
extern char *sdr_outbound_hosts;	/* sdr_creds.outbound_hosts */
extern int	sdr_audit;			/* sdr_creds.audit */

typedef enum
{
	AUDIT_NONE, AUDIT_WRITES, AUDIT_ALL
} AuditLevel;

/* Defines the settings (from _PG_init). */
extern void settings_init(void);

#endif
