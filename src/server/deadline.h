/* The request deadline: a client must send a whole request (head and body)
 * within a fixed time of connecting or of its previous response, however
 * slowly it dribbles bytes (libmicrohttpd's own timeout only counts
 * inactivity). A reaper thread shuts down the sockets that miss it. */
#ifndef SDR_SERVER_DEADLINE_H
#define SDR_SERVER_DEADLINE_H

struct watch;

/* Starts the reaper; seconds is the time allowed per request. 0 or -1. */
int			deadline_start(int seconds);

/* Stops the reaper (connections still open are no longer watched). */
void		deadline_stop(void);

/* Watches a new connection's socket, its deadline running from now; NULL
 * if out of memory (the connection is then not watched). */
struct watch *deadline_open(int fd);

/* The connection is closing: its socket is no longer touched. */
void		deadline_close(struct watch *w);

/* The request is in: no deadline while it is answered. */
void		deadline_pause(struct watch *w);

/* The response is sent: the next request must be in within the deadline. */
void		deadline_restart(struct watch *w);

#endif
