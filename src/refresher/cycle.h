/* cycle.h: one refresh, claimed, sent and recorded in one transaction. */
#ifndef SDR_REFRESHER_CYCLE_H
#define SDR_REFRESHER_CYCLE_H

#include <libpq-fe.h>

#include "refresher.h"

/*
 * Refreshes one due credential: 1 if one was claimed (and its answer
 * recorded), 0 if none is due, -1 on a database error (logged).
 */
int			refresh_one(PGconn *c, const Options *o);

#endif
