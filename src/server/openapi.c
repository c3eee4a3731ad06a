/* GET /openapi.json: the document is a constant of the binary, so serving it
 * costs no copy, no allocation beyond the response and no database call. */
#include "openapi.h"

#include <microhttpd.h>

static const char document[] =
#include "openapi_json.h"
;

struct MHD_Response *
openapi_response(void)
{
	return MHD_create_response_from_buffer(sizeof document - 1, (void *) document,
										   MHD_RESPMEM_PERSISTENT);
}
