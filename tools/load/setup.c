/* setup.c — see setup.h. Sequential: a few ms per user with fast argon2,
 * which is fine below the run's connection cap. */
#include "load/setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int setup_json(const target_t *t, const char *method, const char *path, const char *token, const char *body,
               int want, json_t **out) {
  buf_t b = BUF_INIT;
  int status = 0;
  int rc = target_http(t, method, path, token, body, &status, &b);
  if (rc < 0) {
    fprintf(stderr, "storm-load: %s %s: %s\n", method, path, strerror(-rc));
    buf_free(&b);
    return -1;
  }
  if (status != want) {
    fprintf(stderr, "storm-load: %s %s: HTTP %d %.300s\n", method, path, status, b.data ? b.data : "");
    buf_free(&b);
    return -1;
  }
  json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
  buf_free(&b);
  if (!j && out) {
    fprintf(stderr, "storm-load: %s %s: unparsable JSON\n", method, path);
    return -1;
  }
  if (out) *out = j;
  else json_decref(j);
  return 0;
}

char *setup_user(const target_t *t, const char *name) {
  char body[256];
  snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", name, SETUP_PASSWORD);
  json_t *j = NULL;
  if (setup_json(t, "POST", "/auth/register", NULL, body, 201, NULL) < 0) return NULL;
  if (setup_json(t, "POST", "/auth/login", NULL, body, 200, &j) < 0) return NULL;
  const char *s = json_string_value(json_object_get(j, "access_token"));
  char *tok = s ? strdup(s) : NULL;
  json_decref(j);
  if (!tok) fprintf(stderr, "storm-load: POST /auth/login: no access_token\n");
  return tok;
}

static long long make_channel(const load_opts_t *o, const char *token, unsigned room) {
  char body[96];
  json_t *ch = NULL;
  snprintf(body, sizeof body, "{\"name\":\"%sroom%u\"}", o->prefix, room);
  if (setup_json(&o->target, "POST", "/channels", token, body, 201, &ch) < 0) return -1;
  long long id = (long long)json_integer_value(json_object_get(json_object_get(ch, "channel"), "id"));
  json_decref(ch);
  if (id <= 0) fprintf(stderr, "storm-load: POST /channels: no channel id\n");
  return id > 0 ? id : -1;
}

int setup_rooms(const load_opts_t *o, load_shape_t *sh) {
  sh->channels = calloc(sh->rooms ? sh->rooms : 1, sizeof *sh->channels);
  if (!sh->channels) return -1;
  if (o->peer) {
    for (unsigned r = 0; r < sh->rooms; r++) sh->channels[r] = r + 1;
    return 0;
  }
  sh->tokens = calloc(sh->conns, sizeof *sh->tokens);
  if (!sh->tokens) return -1;
  fprintf(stderr, "storm-load: creating %u users, %u channel(s) (prefix %s)...\n", sh->conns, sh->rooms, o->prefix);
  char name[48], path[64];
  for (unsigned r = 0; r < sh->rooms; r++) {
    for (unsigned k = 0; k < sh->room_size; k++) {
      unsigned i = r * sh->room_size + k;
      if (sh->rooms == 1) snprintf(name, sizeof name, k ? "%sm%u" : "%ss", o->prefix, k);
      else snprintf(name, sizeof name, "%sr%u_%u", o->prefix, r, k);
      if (!(sh->tokens[i] = setup_user(&o->target, name))) return -1;
      sh->ntokens = i + 1;
    }
    unsigned first = r * sh->room_size;
    if ((sh->channels[r] = make_channel(o, sh->tokens[first], r)) < 0) return -1;
    snprintf(path, sizeof path, "/channels/%lld/join", sh->channels[r]);
    for (unsigned k = 1; k < sh->room_size; k++)
      if (setup_json(&o->target, "POST", path, sh->tokens[first + k], NULL, 200, NULL) < 0) return -1;
  }
  return 0;
}

void setup_free(load_shape_t *sh) {
  for (unsigned i = 0; i < sh->ntokens; i++) free(sh->tokens[i]);
  free(sh->tokens);
  free(sh->channels);
  sh->tokens = NULL;
  sh->channels = NULL;
  sh->ntokens = 0;
}
