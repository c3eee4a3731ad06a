/* The server's log: one line per event to stderr, handed to a writer thread;
 * and the monotonic clock its durations (and the server's deadlines) use. */
#define _GNU_SOURCE				/* pthread_setname_np */
#include "log.h"
#include "worker.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUFFER	(256 * 1024)
#define LOG_FLUSH_MS	20

int			log_level = LOG_INFO;

/* Lines waiting for the writer thread; a request thread only copies its line
 * here, so a slow stderr (a file on a busy disk) does not hold up requests. */
static struct
{
	pthread_mutex_t mu;
	pthread_cond_t more;		/* lines are pending, or stop */
	pthread_cond_t room;		/* the writer took the pending lines */
	char		pending[LOG_BUFFER];
	size_t		len;
	bool		running;
	bool		stopping;
	pthread_t	thread;
}			logq = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.more = PTHREAD_COND_INITIALIZER,
	.room = PTHREAD_COND_INITIALIZER,
};

static void
write_all(const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(STDERR_FILENO, buf, len);

		if (n <= 0)
			return;				/* nowhere to report it */
		buf += n;
		len -= (size_t) n;
	}
}

static void *
log_writer(void *arg)
{
	static char out[LOG_BUFFER];

	(void) arg;
	pthread_mutex_lock(&logq.mu);
	for (;;)
	{
		struct timespec until;
		size_t		n;

		while (logq.len == 0 && !logq.stopping)
			pthread_cond_wait(&logq.more, &logq.mu);
		if (logq.len == 0)
			break;				/* stopping, and all written */

		/* let the lines of the next LOG_FLUSH_MS join this one: one write
		 * per batch (or sooner when the buffer is half full) */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += LOG_FLUSH_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L)
		{
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (logq.len < LOG_BUFFER / 2 && !logq.stopping &&
			   pthread_cond_timedwait(&logq.more, &logq.mu, &until) == 0)
			;

		n = logq.len;
		memcpy(out, logq.pending, n);
		logq.len = 0;
		pthread_cond_broadcast(&logq.room);
		pthread_mutex_unlock(&logq.mu);
		write_all(out, n);
		pthread_mutex_lock(&logq.mu);
	}
	pthread_mutex_unlock(&logq.mu);
	return NULL;
}

void
log_start(void)
{
	logq.running = pthread_create(&logq.thread, NULL, log_writer, NULL) == 0;
	if (logq.running)
		pthread_setname_np(logq.thread, "sdr-log");
}

void
log_stop(void)
{
	if (!logq.running)
		return;
	worker_stop(&logq.mu, &logq.more, &logq.stopping, logq.thread);
	logq.running = false;
}

void
log_msg(int level, const char *fmt, ...)
{
	char		line[1024];
	struct timespec ts;
	struct tm	tm;
	va_list		ap;
	int			n,
				m;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
				 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				 tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t) (n + m) > sizeof line - 2)
		m = sizeof line - 2 - n;
	n += m;
	line[n++] = '\n';

	pthread_mutex_lock(&logq.mu);
	if (!logq.running || logq.stopping)
	{
		pthread_mutex_unlock(&logq.mu);
		write_all(line, (size_t) n);
		return;
	}
	/* the writer is behind by LOG_BUFFER bytes: wait rather than lose a line */
	while (logq.len + (size_t) n > LOG_BUFFER)
		pthread_cond_wait(&logq.room, &logq.mu);
	memcpy(logq.pending + logq.len, line, (size_t) n);
	logq.len += (size_t) n;
	/* wake the writer for the first line of a batch and when half full */
	if (logq.len == (size_t) n || logq.len >= LOG_BUFFER / 2)
		pthread_cond_signal(&logq.more);
	pthread_mutex_unlock(&logq.mu);
}

double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* First line of a libpq error message, for the log. */
const char *
first_line(const char *msg, char *buf, size_t size)
{
	size_t		n = strcspn(msg ? msg : "", "\n");

	if (n >= size)
		n = size - 1;
	memcpy(buf, msg ? msg : "", n);
	buf[n] = '\0';
	return buf;
}
