/* The request deadline: a client must send a whole request (head and body)
 * within a fixed time of connecting or of its previous response.
 *
 * libmicrohttpd's connection timeout only counts inactivity, so a client
 * sending one byte every few seconds would hold its connection forever. Each
 * connection's socket is recorded here when libmicrohttpd starts it and
 * forgotten when libmicrohttpd reports it closed, which it does before it
 * closes the socket; so, under the mutex, a recorded socket is still that
 * connection's. Every REAP_INTERVAL_MS the reaper shuts down the sockets past
 * their deadline; libmicrohttpd's worker then sees the end of the stream and
 * closes the connection itself. */
#define _GNU_SOURCE				/* pthread_setname_np */
#include "deadline.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define REAP_INTERVAL_MS	100

struct watch
{
	int			fd;
	double		deadline;		/* now_ms() limit; 0 while a request is answered */
	struct watch *prev;
	struct watch *next;
};

static struct
{
	pthread_mutex_t mu;			/* guards everything below */
	pthread_cond_t wake;		/* stop requested */
	struct watch *head;
	double		limit_ms;
	bool		running;
	bool		stopping;
	pthread_t	thread;
}			dl = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
};

/* Shuts down the sockets past their deadline, each counted first (a client
 * that sees its connection closed finds it in GET /metrics); returns how
 * many. */
static int
reap(double now)
{
	int			n = 0;

	for (struct watch *w = dl.head; w; w = w->next)
	{
		if (w->deadline == 0 || now < w->deadline)
			continue;
		metrics_rejected(REJECT_DEADLINE);
		shutdown(w->fd, SHUT_RDWR);
		w->deadline = 0;
		n++;
	}
	return n;
}

static void *
reaper(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&dl.mu);
	while (!dl.stopping)
	{
		struct timespec until;
		int			n;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += REAP_INTERVAL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L)
		{
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&dl.wake, &dl.mu, &until);
		if (dl.stopping)
			break;
		if ((n = reap(now_ms())) > 0)
			log_msg(LOG_DEBUG, "closed %d connection(s) that sent no whole request within %.0f s",
					n, dl.limit_ms / 1000);
	}
	pthread_mutex_unlock(&dl.mu);
	return NULL;
}

int
deadline_start(int seconds)
{
	pthread_condattr_t attr;

	dl.limit_ms = seconds * 1000.0;
	if (pthread_condattr_init(&attr) != 0)
		return -1;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (pthread_cond_init(&dl.wake, &attr) != 0)
	{
		pthread_condattr_destroy(&attr);
		return -1;
	}
	pthread_condattr_destroy(&attr);
	dl.stopping = false;
	dl.running = pthread_create(&dl.thread, NULL, reaper, NULL) == 0;
	if (!dl.running)
	{
		pthread_cond_destroy(&dl.wake);
		return -1;
	}
	pthread_setname_np(dl.thread, "sdr-deadline");
	return 0;
}

void
deadline_stop(void)
{
	if (!dl.running)
		return;
	worker_stop(&dl.mu, &dl.wake, &dl.stopping, dl.thread);
	pthread_cond_destroy(&dl.wake);
	dl.running = false;
}

struct watch *
deadline_open(int fd)
{
	struct watch *w = calloc(1, sizeof *w);

	if (w == NULL)
		return NULL;
	w->fd = fd;
	pthread_mutex_lock(&dl.mu);
	w->deadline = now_ms() + dl.limit_ms;
	w->next = dl.head;
	if (dl.head)
		dl.head->prev = w;
	dl.head = w;
	pthread_mutex_unlock(&dl.mu);
	return w;
}

void
deadline_close(struct watch *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&dl.mu);
	if (w->prev)
		w->prev->next = w->next;
	else
		dl.head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&dl.mu);
	free(w);
}

/* Sets a connection's deadline: 0 for none, else from now. */
static void
set_deadline(struct watch *w, bool running)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&dl.mu);
	w->deadline = running ? now_ms() + dl.limit_ms : 0;
	pthread_mutex_unlock(&dl.mu);
}

void
deadline_pause(struct watch *w)
{
	set_deadline(w, false);
}

void
deadline_restart(struct watch *w)
{
	set_deadline(w, true);
}
