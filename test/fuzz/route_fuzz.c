/*
 * route_fuzz.c: libFuzzer harness for the HTTP server's routing (src/server/
 * routes.c): percent-decoding, route matching with limit/offset, UUID and
 * UTF-8 checks, and body binding. Input byte 0 picks the method; the rest is
 * "path\nlimit\noffset".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/routes.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT", ""};
	struct route_match m;
	char	   *buf;
	const char *parts[3] = {"", NULL, NULL};
	size_t		n = 0;

	if (size == 0)
		return 0;
	buf = malloc(size);
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	parts[0] = buf;
	for (char *p = buf; *p && n < 2; p++)
		if (*p == '\n')
		{
			*p = '\0';
			parts[++n] = p + 1;
		}
	routes_unescape(buf);
	routes_match(methods[data[0] % 6], buf, parts[1], parts[2], &m);
	if (m.status == 0 && m.wants_body)
	{
		char	   *body = malloc(size + 1);	/* bodies arrive NUL-terminated */

		memcpy(body, data, size);
		body[size] = '\0';
		routes_set_body(&m, body, size);
		(void) strlen(m.params[0]);
		free(body);
	}
	if (m.status == 0)
		for (int i = 0; i < m.nparams; i++)
			if (m.params[i])
				(void) strlen(m.params[i]);
	(void) utf8_valid((const char *) data, size);
	free(buf);
	return 0;
}
