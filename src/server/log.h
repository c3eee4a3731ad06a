/* The server's log (stderr, through a writer thread) and its monotonic
 * clock: the lowest layer, it calls no other file of the server. */
#ifndef SDR_SERVER_LOG_H
#define SDR_SERVER_LOG_H

#include <stddef.h>

enum log_level
{
	LOG_ERROR = 0,
	LOG_INFO = 1,				/* adds one access line per request */
	LOG_DEBUG = 2
};

extern int	log_level;

/* One line to stderr with a UTC timestamp. Between log_start() and log_stop()
 * lines are handed to a writer thread (and stay whole and in order). */
void		log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void		log_start(void);
void		log_stop(void);		/* writes what is pending */

/* Milliseconds on the monotonic clock. */
double		now_ms(void);

/* The first line of msg (NULL: "") in buf, cut to size, for the log. */
const char *first_line(const char *msg, char *buf, size_t size);

#endif
