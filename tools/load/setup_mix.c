/* setup_mix.c — the HTTP setup of the chat and storm-day scenarios (see
 * setup.h). Sequential like setup_rooms: a register+login is a few ms with
 * fast argon2, which is why storm-day bounds its accounts (many devices per
 * account) instead of registering one per connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/setup.h"

static long long channel_id(json_t *j, const char *what) {
  long long id = (long long)json_integer_value(json_object_get(json_object_get(j, "channel"), "id"));
  if (id <= 0) fprintf(stderr, "storm-load: %s: no channel id\n", what);
  return id > 0 ? id : -1;
}

static long long create_channel(const load_opts_t *o, const char *token, const char *tag, unsigned k) {
  char body[96];
  json_t *j = NULL;
  snprintf(body, sizeof body, "{\"name\":\"%s%s%u\"}", o->prefix, tag, k);
  if (setup_json(&o->target, "POST", "/channels", token, body, 201, &j) < 0) return -1;
  long long id = channel_id(j, "POST /channels");
  json_decref(j);
  return id;
}

static int join(const load_opts_t *o, long long ch, const char *token) {
  char path[64];
  snprintf(path, sizeof path, "/channels/%lld/join", ch);
  return setup_json(&o->target, "POST", path, token, NULL, 200, NULL);
}

static int users(const load_opts_t *o, load_shape_t *sh, unsigned n, const char *fmt_tag, unsigned per) {
  sh->tokens = calloc(n ? n : 1, sizeof *sh->tokens);
  if (!sh->tokens) return -1;
  char name[48];
  for (unsigned i = 0; i < n; i++) {
    if (per) snprintf(name, sizeof name, "%s%s%u_%u", o->prefix, fmt_tag, i / per, i % per);
    else snprintf(name, sizeof name, "%s%s%u", o->prefix, fmt_tag, i);
    if (!(sh->tokens[i] = setup_user(&o->target, name))) return -1;
    sh->ntokens = i + 1;
  }
  return 0;
}

int setup_chat(const load_opts_t *o, load_shape_t *sh, chat_layout_t *l) {
  fprintf(stderr, "storm-load: creating %u users, %u channels, %u DMs (prefix %s)...\n", l->users, l->nchannels,
          l->nconvs - l->nchannels, o->prefix);
  if (users(o, sh, l->users, "c", 0) < 0) return -1;
  for (unsigned c = 0; c < l->nchannels; c++) {
    const uint32_t *m = &l->members[l->conv_off[c]];
    if ((l->conv_id[c] = create_channel(o, sh->tokens[m[0]], "ch", c)) < 0) return -1;
    for (unsigned i = 1; i < chat_conv_size(l, c); i++)
      if (join(o, l->conv_id[c], sh->tokens[m[i]]) < 0) return -1;
  }
  for (unsigned c = l->nchannels; c < l->nconvs; c++) {
    const uint32_t *m = &l->members[l->conv_off[c]];
    char path[96];
    json_t *j = NULL;
    snprintf(path, sizeof path, "/dm/%sc%u", o->prefix, m[1]);
    if (setup_json(&o->target, "POST", path, sh->tokens[m[0]], NULL, 200, &j) < 0) return -1;
    l->conv_id[c] = channel_id(j, "POST /dm");
    json_decref(j);
    if (l->conv_id[c] < 0) return -1;
  }
  return 0;
}

int setup_day(const load_opts_t *o, load_shape_t *sh) {
  unsigned accounts = sh->rooms * sh->room_users;
  fprintf(stderr, "storm-load: creating %u accounts (%u devices each), %u channels (prefix %s)...\n", accounts,
          sh->devices, sh->rooms, o->prefix);
  sh->channels = calloc(sh->rooms ? sh->rooms : 1, sizeof *sh->channels);
  if (!sh->channels || users(o, sh, accounts, "d", sh->room_users) < 0) return -1;
  for (unsigned g = 0; g < sh->rooms; g++) {
    char **t = &sh->tokens[(size_t)g * sh->room_users];
    if ((sh->channels[g] = create_channel(o, t[0], "day", g)) < 0) return -1;
    for (unsigned k = 1; k < sh->room_users; k++)
      if (join(o, sh->channels[g], t[k]) < 0) return -1;
  }
  return 0;
}
