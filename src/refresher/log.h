/* log.h: the refresher's log (one line to stderr) and its monotonic clock,
 * the lowest layer: it calls no other file of the refresher. */
#ifndef SDR_REFRESHER_LOG_H
#define SDR_REFRESHER_LOG_H

/* One line to stderr with a UTC timestamp; never a token or secret. */
void		rlog(const char *fmt,...) __attribute__((format(printf, 1, 2)));

/* Milliseconds on the monotonic clock. */
double		now_ms(void);

#endif
