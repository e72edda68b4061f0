/*
 * messages_lookup.c — usernames from the users service, over the bus.
 *
 * The messages service stores user ids only; usernames are the users
 * service's data, asked with `users.get` {id} or {username} (services talk
 * only through the bus). A job collects what it needs in slots, then
 * msg_lookup_run answers each from the cache or with one request, all in
 * parallel, and continues the job when every slot has settled. Answers
 * fill the cache. Slots keep their own copy of the name, so a cache
 * eviction while other lookups of the job are still in flight loses
 * nothing. Concurrent jobs asking for the same unknown name each send a
 * request: the cache makes that a cold-start cost only.
 */
#include "services/messages/messages_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/log.h"

#define COMPONENT "messages"

struct msg_lookup {
  msg_job_t *job;
  size_t slot;
  uint64_t req_id;
  msg_lookup_t *prev, *next; /* svc->lookups */
};

static msg_slot_t *slot_new(msg_job_t *j) {
  if (j->nslots == j->slots_cap) {
    size_t cap = j->slots_cap ? j->slots_cap * 2 : 8;
    msg_slot_t *p = realloc(j->slots, cap * sizeof *p);
    if (!p) return NULL;
    j->slots = p;
    j->slots_cap = cap;
  }
  msg_slot_t *s = &j->slots[j->nslots++];
  memset(s, 0, sizeof *s);
  s->status = 1;
  return s;
}

void msg_slot_need_id(msg_job_t *j, int64_t id) {
  if (id <= 0) return;
  for (size_t i = 0; i < j->nslots; i++)
    if (j->slots[i].id == id) return;
  msg_slot_t *s = slot_new(j);
  if (s) s->id = id; /* out of memory: the name is just left out */
}

int msg_slot_add_name(msg_job_t *j, const char *name) {
  for (size_t i = 0; i < j->nslots; i++)
    if (j->slots[i].id == 0 && strcmp(j->slots[i].name, name) == 0) return (int)i;
  msg_slot_t *s = slot_new(j);
  if (!s) return -1;
  snprintf(s->name, sizeof s->name, "%s", name);
  return (int)(s - j->slots);
}

const char *msg_name_of(msg_job_t *j, int64_t id) {
  for (size_t i = 0; i < j->nslots; i++)
    if (j->slots[i].status == 0 && j->slots[i].id == id) return j->slots[i].name;
  return msg_names_by_id(j->svc->names, id);
}

/* Reads a users.get answer into the slot: 0, -ENOENT or -EAGAIN. */
static int read_answer(messages_service_t *s, msg_slot_t *slot, const bus_msg_t *msg) {
  json_t *root = json_loadb(msg->data ? msg->data : "", msg->len, 0, NULL);
  int r = -EAGAIN;
  json_t *user = json_object_get(root, "user");
  json_t *id = json_object_get(user, "id");
  json_t *name = json_object_get(user, "username");
  char folded[USER_NAME_MAX + 1];
  if (json_is_integer(id) && json_integer_value(id) > 0 && json_is_string(name) &&
      msg_username_fold(json_string_value(name), json_string_length(name), folded)) {
    int64_t uid = (int64_t)json_integer_value(id);
    /* An answer about someone else would be a users service bug: refuse
     * it rather than cache a wrong pairing. */
    bool match = slot->id ? uid == slot->id : strcmp(folded, slot->name) == 0;
    if (match) {
      slot->id = uid;
      memcpy(slot->name, folded, sizeof folded);
      msg_names_put(s->names, uid, folded);
      r = 0;
    }
  } else {
    json_t *st = json_object_get(json_object_get(root, "error"), "status");
    if (json_is_integer(st) && json_integer_value(st) == 404) r = -ENOENT;
  }
  json_decref(root);
  return r;
}

static void settle(msg_lookup_t *l, int status, const bus_msg_t *msg) {
  msg_job_t *j = l->job;
  messages_service_t *s = j->svc;
  if (l->prev)
    l->prev->next = l->next;
  else
    s->lookups = l->next;
  if (l->next) l->next->prev = l->prev;
  msg_slot_t *slot = &j->slots[l->slot];
  slot->status = status == 0 ? read_answer(s, slot, msg) : -EAGAIN;
  if (slot->status == -EAGAIN)
    log_debug(COMPONENT, "users.get {id %" PRId64 ", username \"%s\"} failed (%d)", slot->id,
              slot->name, status);
  free(l);
  if (--j->lookups == 0) j->resolved_fn(j);
}

static void on_answer(bus_t *bus, int status, const bus_msg_t *msg, void *arg) {
  settle(arg, status, msg);
}

/* Starts the users.get of slot i: 0, or -errno (the slot is then settled
 * by the caller). */
static int ask(msg_job_t *j, size_t i) {
  messages_service_t *s = j->svc;
  msg_slot_t *slot = &j->slots[i];
  char payload[64];
  int n = slot->id ? snprintf(payload, sizeof payload, "{\"id\":%" PRId64 "}", slot->id)
                   : snprintf(payload, sizeof payload, "{\"username\":\"%s\"}", slot->name);
  msg_lookup_t *l = calloc(1, sizeof *l);
  if (!l) return -ENOMEM;
  l->job = j;
  l->slot = i;
  int rc = bus_request(s->o.bus, "users.get", payload, (size_t)n, s->o.users_timeout_ms,
                       on_answer, l, &l->req_id);
  if (rc < 0) {
    free(l);
    return rc;
  }
  l->next = s->lookups;
  if (s->lookups) s->lookups->prev = l;
  s->lookups = l;
  j->lookups++;
  return 0;
}

void msg_lookup_run(msg_job_t *j, msg_step_fn next) {
  messages_service_t *s = j->svc;
  j->resolved_fn = next;
  for (size_t i = 0; i < j->nslots; i++) {
    msg_slot_t *slot = &j->slots[i];
    if (slot->status != 1) continue;
    if (slot->id) {
      const char *name = msg_names_by_id(s->names, slot->id);
      if (name) {
        snprintf(slot->name, sizeof slot->name, "%s", name);
        slot->status = 0;
        continue;
      }
    } else {
      int64_t id = msg_names_by_name(s->names, slot->name);
      if (id) {
        slot->id = id;
        slot->status = 0;
        continue;
      }
    }
    int rc = s->stopping ? -ESHUTDOWN : ask(j, i);
    if (rc < 0) {
      log_debug(COMPONENT, "users.get not sent: %d", rc);
      slot->status = -EAGAIN;
    }
  }
  /* Answers never arrive inside bus_request, so the count is complete. */
  if (j->lookups == 0) next(j);
}

void msg_lookup_cancel_all(messages_service_t *s) {
  while (s->lookups) {
    msg_lookup_t *l = s->lookups;
    bus_request_cancel(s->o.bus, l->req_id);
    settle(l, -ECANCELED, NULL);
  }
}
