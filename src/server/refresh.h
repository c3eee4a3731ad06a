/* On-demand refresh (POST /integration-credentials/{id}/refresh): waiting
 * for a refresher to have refreshed a credential without holding a worker
 * thread or a pool connection. */
#ifndef SDR_SERVER_REFRESH_H
#define SDR_SERVER_REFRESH_H

#include <stddef.h>
#include <microhttpd.h>

/* How a wait ended. */
enum refresh_result
{
	RW_PENDING = 0,
	RW_REFRESHED,				/* a refresher stored new tokens */
	RW_NEEDS_REAUTHORIZATION,	/* the provider answered invalid_grant */
	RW_RETRY,					/* the refresh failed; the refresher backs off */
	RW_TIMEOUT					/* no refresh seen within the bound (or stopping) */
};

/* The longest refresh_record() error code (refresh_error's [a-z0-9_]{1,64}). */
#define REFRESH_ERROR_MAX 64

struct refresh_waiter;

/* Starts the listener thread; its database connection opens at the first
 * wait. wait_ms bounds each wait. 0, or -1 (logged). */
int			refresh_start(const char *conninfo, int wait_ms);

/* Registers a wait for credential id (a canonical UUID) by the request on c,
 * listening first, so a refresh that commits after this returns is seen.
 * Call it before sdr_creds.request_refresh(). NULL if out of memory. */
struct refresh_waiter *refresh_wait_begin(const char *id, struct MHD_Connection *c);

/* From the access handler, once request_refresh() succeeded: suspends c
 * until the wait ends; libmicrohttpd then calls the handler again, which
 * reads refresh_wait_result(). */
void		refresh_wait_suspend(struct refresh_waiter *w);

/* How the wait ended; error gets the refresh's error code (RW_RETRY), "" if none. */
enum refresh_result refresh_wait_result(struct refresh_waiter *w, char *error, size_t size);

/* Unregisters and frees w (NULL: nothing). Never while it is suspended. */
void		refresh_wait_end(struct refresh_waiter *w);

/* Ends every wait now (RW_TIMEOUT) and every later one at once: called when
 * the server stops, before its HTTP workers (no connection may stay
 * suspended). */
void		refresh_stop_waiting(void);

/* Stops the listener thread and closes its connection. */
void		refresh_stop(void);

#endif
