/*
 * hexdigit.h: the value of one hex digit; shared by the extension (jwt.c) and
 * the HTTP server (routes.c), which are built separately.
 */
#ifndef SDR_HEXDIGIT_H
#define SDR_HEXDIGIT_H

/* 0-15, or -1 if c is not a hex digit. */
static inline int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
