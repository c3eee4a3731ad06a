/* The grants check: which of the functions the statements call a pool
 * connection's role may not execute. */
#ifndef SDR_SERVER_GRANTS_H
#define SDR_SERVER_GRANTS_H

#include <libpq-fe.h>

/* grants_missing()'s bit for the three-argument authenticate_headers(),
 * the one that takes the client's address: without EXECUTE on it (or on a
 * 1.0 schema) the statements call the two-argument one, and the database
 * then records the server's address as the client's. */
#define GRANT_CLIENT_ADDRESS 1

/* Which of the called functions conn's role may not execute, as a bit set;
 * -1 if the check itself failed (logged at level, under the pool's name). A
 * function missing is named in the log once per pool (*told: the bits
 * already logged): the requests that call it answer 500 until it is
 * granted. */
int			grants_missing(PGconn *conn, const char *pool, int level, int *told);

#endif
