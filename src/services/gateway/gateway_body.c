/*
 * gateway_body.c — the checks every JSON-body route shares (auth and
 * messages routes): the media type, then the body as a JSON object. The
 * size limit is the route's max_body, enforced by the server (413) before
 * the handler runs.
 */
#include "net/http.h"
#include "services/gateway/gateway_internal.h"

json_t *gw_json_body(http_req_t *r) {
  /* Parameters (charset=utf-8) are allowed; the media type must match. */
  str_t ct = http_req_header(r, "content-type");
  size_t n = 0;
  while (n < ct.n && ct.p[n] != ';' && ct.p[n] != ' ') n++;
  if (!str_ieq((str_t){ct.p, n}, STR_LIT("application/json"))) {
    http_respond_error(r, 415, "unsupported_media_type", "Content-Type must be application/json");
    return NULL;
  }
  return http_req_json_object(r);
}
