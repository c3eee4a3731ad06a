/* Stopping a background thread (the log writer, the deadline reaper) that
 * waits on a condition variable for work or for its stop flag. */
#ifndef SDR_SERVER_WORKER_H
#define SDR_SERVER_WORKER_H

#include <pthread.h>
#include <stdbool.h>

/* Sets *stopping under mu, wakes the thread waiting on cv, and joins it. */
static inline void
worker_stop(pthread_mutex_t *mu, pthread_cond_t *cv, bool *stopping, pthread_t thread)
{
	pthread_mutex_lock(mu);
	*stopping = true;
	pthread_cond_signal(cv);
	pthread_mutex_unlock(mu);
	pthread_join(thread, NULL);
}

#endif
