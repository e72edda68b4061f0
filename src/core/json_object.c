#include "core/json_object.h"

json_t *json_object_load_bounded(const void *data, size_t len, size_t max, const char **detail) {
  if (len > max) {
    *detail = "request too large";
    return NULL;
  }
  json_error_t jerr;
  json_t *root = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object(root)) {
    *detail = "request must be a JSON object";
    json_decref(root);
    return NULL;
  }
  return root;
}
