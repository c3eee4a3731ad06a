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

#endif
