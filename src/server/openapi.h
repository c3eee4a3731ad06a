/* GET /openapi.json: the OpenAPI 3.1 description of the server's routes. Its
 * source is src/server/openapi.json; the build embeds it (openapi_json.h, made
 * by the Makefile) with the extension's version as info.version. */
#ifndef SDR_SERVER_OPENAPI_H
#define SDR_SERVER_OPENAPI_H

struct MHD_Response;

/* A response holding the document (served from constant memory), or NULL if
 * libmicrohttpd cannot allocate one. */
struct MHD_Response *openapi_response(void);

#endif
