/*
 * setup.h — the HTTP setup of a run against STORM (users, channels, joins),
 * shared by every scenario; blocking, before any measured traffic.
 *
 * Contract:
 * - setup_json does one request and succeeds only on status `want`; the
 *   parsed body goes to *out (caller decrefs) when out is not NULL. Returns
 *   0 or -1 with a message on stderr.
 * - setup_user registers NAME (password SETUP_PASSWORD) and logs in; it
 *   returns a malloc'd access token or NULL (message on stderr).
 * - setup_rooms fills sh->tokens and sh->channels for sh->rooms rooms of
 *   sh->room_size connections: in peer mode, rooms 1..R and no tokens;
 *   otherwise one user per connection, the room's first user creates its
 *   channel, the others join it. Returns 0 or -1; setup_free releases what
 *   was allocated either way.
 * - setup_chat registers the chat's users (`<prefix>c<i>`, tokens in
 *   sh->tokens), creates its channels (the first member creates, the others
 *   join) and opens its DMs (POST /dm/{username} by the first of the pair),
 *   writing the channel ids into l->conv_id.
 * - setup_day registers sh->rooms x sh->room_users accounts
 *   (`<prefix>d<room>_<k>`) and one channel per room that all of the
 *   room's accounts join (sh->channels).
 * - Both return 0 or -1 (message on stderr); setup_free releases tokens
 *   and channels.
 */
#ifndef STORM_LOAD_SETUP_H
#define STORM_LOAD_SETUP_H

#include <jansson.h>

#include "load/run.h"

#define SETUP_PASSWORD "storm-load-password-1"

int setup_json(const target_t *t, const char *method, const char *path, const char *token, const char *body,
               int want, json_t **out);
char *setup_user(const target_t *t, const char *name);
int setup_rooms(const load_opts_t *o, load_shape_t *sh);
int setup_chat(const load_opts_t *o, load_shape_t *sh, chat_layout_t *l);
int setup_day(const load_opts_t *o, load_shape_t *sh);
void setup_free(load_shape_t *sh);

#endif
