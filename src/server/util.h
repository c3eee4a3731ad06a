/* Helpers shared by the server: logging to stderr, a monotonic clock and
 * JSON string escaping. */
#ifndef SDR_SERVER_UTIL_H
#define SDR_SERVER_UTIL_H

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

/* Escapes src[0..len) as the inside of a JSON string into dst, which must hold
 * 6 * len + 1 bytes; returns the escaped length (dst is NUL-terminated). */
size_t		json_escape(char *dst, const char *src, size_t len);

#endif
