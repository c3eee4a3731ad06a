/*
 * hex.h: hex digits and UUID text (strict 8-4-4-4-12), shared by the extension
 * (jwt.c) and the HTTP server (routes.c), which are built separately.
 */
#ifndef SDR_HEX_H
#define SDR_HEX_H

#include <stdbool.h>
#include <stddef.h>

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

/* Parses a UUID in 8-4-4-4-12 hex form (either case) into out[16]. */
static inline bool
uuid_parse(const char *s, size_t len, unsigned char *out)
{
	int			n = 0;

	if (len != 36)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		int			hi;
		int			lo;

		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		hi = hexval(s[i]);
		lo = i + 1 < len ? hexval(s[i + 1]) : -1;
		if (hi < 0 || lo < 0)
			return false;
		out[n++] = (unsigned char) (hi << 4 | lo);
		i++;
	}
	return n == 16;
}

#endif
