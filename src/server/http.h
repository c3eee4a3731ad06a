/* The HTTP side of the server: libmicrohttpd's callbacks, request limits,
 * reading bodies, writing JSON responses and the access log. */
#ifndef SDR_SERVER_HTTP_H
#define SDR_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct http_config
{
	const char *listen;			/* numeric IPv4 or IPv6 address */
	int			port;			/* 0: any free port */
	size_t		max_body;		/* larger bodies get 413 */
	size_t		max_header;		/* larger header blocks get 431 */
	int			threads;		/* worker threads */
	int			max_connections;	/* open connections at once */
	int			max_per_addr;	/* connections per client address, 0: no limit */
	int			request_deadline;	/* seconds to send a whole request */
	bool		trust_forwarded_for;	/* the client is X-Forwarded-For's last entry */
};

/* Starts listening; returns the bound port, or -1 (logged). */
int			http_start(const struct http_config *config);

/* Closes the listening socket (new connections are refused); later
 * responses close their connection. */
void		http_stop_accepting(void);

/* Requests received and not yet completed. */
int			http_in_flight(void);

/* Stops accepting, then closes every connection (also after a failed start). */
void		http_stop(void);

#endif
