/*
 * redact.h: keeping secrets out of the server log, pg_stat_activity and
 * pg_stat_statements.
 */
#ifndef SDR_REDACT_H
#define SDR_REDACT_H

/* Installs the hooks (from _PG_init). */
extern void redact_init(void);

/* For functions that receive secrets: hides a literal-bearing statement from pg_stat_activity. */
extern void redact_activity(void);

/* Whether s holds an API-key- or JWT-shaped string (what the log never shows). */
extern bool redact_has_secret(const char *s);

#endif
