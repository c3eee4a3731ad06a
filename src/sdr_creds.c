/*
 * sdr_creds.c: the top of the extension: module start-up (_PG_init: libsodium,
 * the settings, each module's init, which registers its own hooks and
 * callbacks) and the two small SQL functions around the org context. The
 * layers below are drawn in src/README.md.
 */
#include "sdr_creds.h"

#include <sodium.h>

#include "miscadmin.h"
#include "monitor.h"
#include "org_context.h"
#include "redact.h"
#include "refresh.h"
#include "settings.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * The order of the inits that register transaction callbacks keeps their
 * order at transaction end (the last registered runs first): claimed
 * credentials are forgotten (refresh.c), then the org context is cleared
 * (org_context.c), then the monitor writes what is left (monitor.c).
 */
void
_PG_init(void)
{
	if (sodium_init() < 0)
		ereport(ERROR, (errmsg("sdr_creds: libsodium could not be initialised")));

	settings_init();
	usage_init();
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("sdr_creds");
#else
	EmitWarningsOnPlaceholders("sdr_creds");
#endif

	monitor_init();
	org_context_init();
	redact_init();
	refresh_init();
}

PG_FUNCTION_INFO_V1(sdr_creds_current_org_id);
Datum
sdr_creds_current_org_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org = palloc(sizeof(pg_uuid_t));

	if (!org_context_get(org, GetUserId()))
		PG_RETURN_NULL();
	PG_RETURN_UUID_P(org);
}

/* The trusted-service right is EXECUTE on this function; PUBLIC has none. */
PG_FUNCTION_INFO_V1(sdr_creds_act_as);
Datum
sdr_creds_act_as(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *org;
	char		principal[PRINCIPAL_MAX];

	if (PG_ARGISNULL(0))
		SDR_ERROR("422", "org_id must not be null");
	org = PG_GETARG_UUID_P(0);
	snprintf(principal, sizeof(principal), "service:%s", GetUserNameFromId(GetUserId(), false));
	org_context_set(org, GetUserId(), principal);
	PG_RETURN_UUID_P(org);
}
