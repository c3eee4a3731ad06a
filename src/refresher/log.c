/*
 * log.c: the refresher's log, one line per event to stderr with a UTC
 * timestamp, and the monotonic clock its durations use.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

void
rlog(const char *fmt,...)
{
	char		line[1024];
	struct timeval tv;
	struct tm	tm;
	int			n;
	va_list		ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int) strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%03ldZ ", (long) tv.tv_usec / 1000);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = (int) strcspn(line, "\n");	/* one line: libpq messages end in a newline */
	line[n] = '\n';
	if (write(STDERR_FILENO, line, n + 1) < 0)
		return;
}

double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}
