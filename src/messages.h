/*
 * messages.h: the API's error texts, shared by the extension (which raises
 * them) and the HTTP server (which answers with them when the database cannot).
 * Plain C, no PostgreSQL headers: both builds include it.
 */
#ifndef SDR_MESSAGES_H
#define SDR_MESSAGES_H

#define MSG_UNAUTHORIZED  "Invalid or missing authentication credentials"
#define MSG_FORBIDDEN     "You do not have permission to access this resource"
#define MSG_UNDECRYPTABLE "credential could not be decrypted: wrong key or corrupt data"
#define MSG_UNAVAILABLE   "Service unavailable"
#define MSG_INTERNAL      "Internal server error"

#endif
