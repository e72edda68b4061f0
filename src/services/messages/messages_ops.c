/*
 * messages_ops.c — every operation but send (messages_send.c).
 *
 * Ops naming a user (members.add, dm.open) first resolve the username
 * through users.get (messages_lookup.c). The store calls of an op run in
 * one pool step (work_*), which leaves records in the job and decides
 * authorization there, where the data is; the loop step (after_*) asks for
 * the usernames the reply shows, builds the reply, answers and publishes
 * the events. Events are published only after the store change they
 * announce has been made, and only when something changed (joining a
 * channel twice announces nothing).
 *
 * Visibility: a private channel (DMs are private) does not exist for a
 * non-member — every op answers 404 not_found, never 403, so ids cannot be
 * probed. 403 forbidden is for what a caller can see but not do: history
 * or the members of a public channel they have not joined, editing another
 * member's message, adding members without being the owner.
 */
#include "services/messages/messages_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define COMPONENT "messages"

/* Room left in a reply for the envelope around a list ("more", brackets). */
#define REPLY_SLACK 256

static size_t reply_budget(messages_service_t *s) {
  size_t m = bus_max_payload(s->o.bus);
  return m > 2 * REPLY_SLACK ? m - REPLY_SLACK : m / 2;
}

/* ---- pool steps: store calls and authorization ---- */

#define STORE(j) ((j)->svc->o.store)

/* A store result that is not one of the expected outcomes: the store has
 * logged the detail; the client may retry. */
static void store_failed(msg_job_t *j, const char *what, int rc) {
  log_debug(COMPONENT, "%s: store error %d", what, rc);
  j->err = MSG_E_UNAVAILABLE;
}

/* Loads j->ch and whether the caller is a member (j->flag). A channel that
 * does not exist, or is private and the caller not a member, is not found.
 * Returns false when j->err is set. */
static bool load_visible(msg_job_t *j, const char *what) {
  messages_store_t *st = STORE(j);
  int rc = st->ops->channel_get(st, j->req.channel_id, &j->ch);
  if (rc == -ENOENT) {
    j->err = MSG_E_NOT_FOUND;
    return false;
  }
  if (rc < 0) {
    store_failed(j, what, rc);
    return false;
  }
  rc = st->ops->member_get(st, j->ch.id, j->req.user_id, &j->mem);
  if (rc < 0 && rc != -ENOENT) {
    store_failed(j, what, rc);
    return false;
  }
  j->flag = rc == 0;
  if (!j->flag && j->ch.is_private) {
    j->err = MSG_E_NOT_FOUND;
    return false;
  }
  return true;
}

/* load_visible, and the caller must be a member (403 for a public
 * channel they can see but have not joined). */
static bool load_member(msg_job_t *j, const char *what, const char *forbidden) {
  if (!load_visible(j, what)) return false;
  if (!j->flag) {
    j->err = MSG_E_FORBIDDEN;
    j->detail = forbidden;
    return false;
  }
  return true;
}

/* True (and the job failed) if user_id may not join one more channel. */
static bool at_channel_cap(msg_job_t *j, int64_t user_id) {
  int n = STORE(j)->ops->member_count_for_user(STORE(j), user_id);
  if (n < 0) {
    store_failed(j, "member_count_for_user", n);
    return true;
  }
  if (n >= MSG_MAX_CHANNELS_PER_USER) {
    j->err = MSG_E_TOO_MANY_CHANNELS;
    return true;
  }
  return false;
}

static void work_create(msg_job_t *j) {
  messages_store_t *st = STORE(j);
  if (at_channel_cap(j, j->req.user_id)) return;
  int rc = st->ops->channel_create(st, j->req.name, j->req.topic, j->req.is_private,
                                   j->req.user_id, msg_now_ms(), &j->ch);
  if (rc == -EEXIST)
    j->err = MSG_E_NAME_TAKEN;
  else if (rc == -ENOENT)
    j->err = MSG_E_USER_NOT_FOUND; /* the caller's account is gone */
  else if (rc < 0)
    store_failed(j, "channel_create", rc);
}

static void work_list(msg_job_t *j) {
  messages_store_t *st = STORE(j);
  channel_membership_t *rows = calloc((size_t)j->req.limit, sizeof *rows);
  if (!rows) {
    j->err = MSG_E_UNAVAILABLE;
    return;
  }
  j->items = rows;
  int n = st->ops->channel_list_for_user(st, j->req.user_id, j->req.after, rows,
                                         (size_t)j->req.limit, &j->more);
  if (n < 0)
    store_failed(j, "channel_list_for_user", n);
  else
    j->nitems = (size_t)n;
}

static void work_public(msg_job_t *j) {
  messages_store_t *st = STORE(j);
  channel_rec_t *rows = calloc((size_t)j->req.limit, sizeof *rows);
  if (!rows) {
    j->err = MSG_E_UNAVAILABLE;
    return;
  }
  j->items = rows;
  int n = st->ops->channel_list_public(st, j->req.after, rows, (size_t)j->req.limit, &j->more);
  if (n < 0)
    store_failed(j, "channel_list_public", n);
  else
    j->nitems = (size_t)n;
}

static void work_get(msg_job_t *j) { load_visible(j, "channel_get"); }

/* Public: anyone joins. Private: only an existing member "joins" (an
 * idempotent no-op); for anyone else it does not exist. */
static void work_join(msg_job_t *j) {
  if (!load_visible(j, "channel_join")) return;
  if (j->flag) {
    j->flag = false; /* already a member: nothing changes, nothing to announce */
    return;
  }
  if (at_channel_cap(j, j->req.user_id)) return;
  messages_store_t *st = STORE(j);
  bool added = false;
  int rc = st->ops->member_add(st, j->ch.id, j->req.user_id, msg_now_ms(), &added);
  if (rc == -ENOENT)
    j->err = MSG_E_NOT_FOUND; /* deleted meanwhile */
  else if (rc < 0)
    store_failed(j, "member_add", rc);
  j->flag = added;
}

static void work_leave(msg_job_t *j) {
  if (!load_visible(j, "channel_leave")) return;
  if (!j->flag) return; /* not a member of a public channel: already out */
  if (j->ch.kind == CHANNEL_KIND_DM) {
    /* A DM is the one conversation of a pair (dm.open returns it): a
     * member who left it could never get back in. */
    j->err = MSG_E_FORBIDDEN;
    j->detail = "a direct conversation cannot be left";
    return;
  }
  messages_store_t *st = STORE(j);
  int rc = st->ops->member_remove(st, j->ch.id, j->req.user_id);
  if (rc < 0 && rc != -ENOENT) store_failed(j, "member_remove", rc);
  j->flag = rc == 0;
}

static void work_members_list(msg_job_t *j) {
  if (!load_member(j, "members_list", "only members see the members")) return;
  messages_store_t *st = STORE(j);
  member_rec_t *rows = calloc((size_t)j->req.limit, sizeof *rows);
  if (!rows) {
    j->err = MSG_E_UNAVAILABLE;
    return;
  }
  j->items = rows;
  int n = st->ops->members_list(st, j->ch.id, j->req.after, rows, (size_t)j->req.limit,
                                &j->more);
  if (n == -ENOENT)
    j->err = MSG_E_NOT_FOUND;
  else if (n < 0)
    store_failed(j, "members_list", n);
  else
    j->nitems = (size_t)n;
}

/* j->num: the user to add (resolved from the username). */
static void work_members_add(msg_job_t *j) {
  if (!load_visible(j, "members_add")) return;
  if (j->ch.kind == CHANNEL_KIND_DM) {
    j->err = MSG_E_FORBIDDEN;
    j->detail = "a direct conversation has exactly two members";
    return;
  }
  if (!j->flag) {
    j->err = MSG_E_FORBIDDEN;
    j->detail = "only members add members";
    return;
  }
  if (j->ch.is_private && j->ch.owner_id != j->req.user_id) {
    j->err = MSG_E_FORBIDDEN;
    j->detail = "only the owner adds members to a private channel";
    return;
  }
  if (at_channel_cap(j, j->num)) return;
  messages_store_t *st = STORE(j);
  bool added = false;
  int rc = st->ops->member_add(st, j->ch.id, j->num, msg_now_ms(), &added);
  if (rc == 0) rc = st->ops->member_get(st, j->ch.id, j->num, &j->mem);
  if (rc == -ENOENT)
    j->err = MSG_E_USER_NOT_FOUND; /* the account (or the channel) went away */
  else if (rc < 0)
    store_failed(j, "member_add", rc);
  j->flag = added;
}

static void work_dm_open(msg_job_t *j) {
  messages_store_t *st = STORE(j);
  bool created = false;
  int rc = st->ops->dm_get_or_create(st, j->req.user_id, j->num, msg_now_ms(), &j->ch, &created);
  if (rc == -ENOENT)
    j->err = MSG_E_USER_NOT_FOUND;
  else if (rc < 0)
    store_failed(j, "dm_get_or_create", rc);
  j->flag = created;
}

static void work_history(msg_job_t *j) {
  if (!load_member(j, "history", "only members read the history")) return;
  messages_store_t *st = STORE(j);
  msg_dir_t dir = j->req.has_after ? MSG_AFTER : MSG_BEFORE;
  int64_t seq = j->req.has_after ? j->req.after : j->req.has_before ? j->req.before
                                                                     : MSG_SEQ_LATEST;
  int rc = st->ops->messages_page(st, j->ch.id, dir, seq, (size_t)j->req.limit, &j->page);
  if (rc == -ENOENT)
    j->err = MSG_E_NOT_FOUND;
  else if (rc < 0)
    store_failed(j, "messages_page", rc);
}

/* Edit and delete: non-members do not see the messages (404); members see
 * them, so another author's message is 403. */
static bool require_member(msg_job_t *j, const char *what) {
  messages_store_t *st = STORE(j);
  int rc = st->ops->member_get(st, j->req.channel_id, j->req.user_id, &j->mem);
  if (rc == -ENOENT) {
    j->err = MSG_E_NOT_FOUND;
    return false;
  }
  if (rc < 0) {
    store_failed(j, what, rc);
    return false;
  }
  return true;
}

static void work_edit(msg_job_t *j) {
  if (!require_member(j, "edit")) return;
  messages_store_t *st = STORE(j);
  str_t body = {j->req.body, j->req.body_len};
  int rc = st->ops->message_edit(st, j->req.channel_id, j->req.message_id, j->req.user_id, body,
                                 msg_now_ms(), &j->msg);
  if (rc == -EPERM) {
    j->err = MSG_E_FORBIDDEN;
    j->detail = "only the author edits a message";
  } else if (rc == -ENOENT) {
    j->err = MSG_E_NOT_FOUND; /* unknown, or deleted */
  } else if (rc < 0) {
    store_failed(j, "message_edit", rc);
  }
}

static void work_delete(msg_job_t *j) {
  if (!require_member(j, "delete")) return;
  messages_store_t *st = STORE(j);
  msg_rec_t *m = NULL;
  int rc = st->ops->message_get(st, j->req.channel_id, j->req.message_id, &m);
  if (rc == 0 && m->author_id != j->req.user_id) rc = -EPERM;
  /* Deleting a deleted message changes nothing and announces nothing. */
  bool was_deleted = rc == 0 && m->deleted;
  free(m);
  if (rc == 0 && !was_deleted)
    rc = st->ops->message_delete(st, j->req.channel_id, j->req.message_id, j->req.user_id,
                                 msg_now_ms(), &j->msg);
  if (rc == -EPERM) {
    j->err = MSG_E_FORBIDDEN;
    j->detail = "only the author deletes a message";
  } else if (rc == -ENOENT) {
    j->err = MSG_E_NOT_FOUND;
  } else if (rc < 0) {
    store_failed(j, "message_delete", rc);
  }
  j->flag = rc == 0 && !was_deleted;
}

static void work_read(msg_job_t *j) {
  messages_store_t *st = STORE(j);
  int rc = st->ops->read_set(st, j->req.channel_id, j->req.user_id, j->req.seq, &j->num);
  if (rc == -ENOENT)
    j->err = MSG_E_NOT_FOUND; /* no such channel, or not a member of it */
  else if (rc < 0)
    store_failed(j, "read_set", rc);
}

/* ---- loop steps: replies and events ---- */

/* {"op":"channel_joined","channel":{...}} on user.<viewer>. */
static void publish_joined(messages_service_t *s, const channel_rec_t *c, int64_t viewer,
                           const char *peer) {
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"op\":\"channel_joined\",\"channel\":");
  msg_channel_json(c, viewer, peer, NULL, &b);
  buf_append_char(&b, '}');
  msg_publish(s, "user", viewer, &b);
  buf_free(&b);
}

/* member_joined / member_left on chan.<id>. */
static void publish_member(messages_service_t *s, const char *op, int64_t channel_id,
                           int64_t user_id, const char *username) {
  buf_t b = BUF_INIT;
  buf_printf(&b, "{\"op\":\"%s\",\"channel_id\":%" PRId64 ",\"user_id\":%" PRId64
                 ",\"username\":",
             op, channel_id, user_id);
  if (username && *username) {
    buf_append_char(&b, '"');
    buf_append_json_escaped(&b, username, strlen(username));
    buf_append_char(&b, '"');
  } else {
    buf_append_str(&b, "null");
  }
  buf_append_char(&b, '}');
  msg_publish(s, "chan", channel_id, &b);
  buf_free(&b);
}

/* Replies {"channel":{...}} as the caller sees j->ch. */
static void reply_channel(msg_job_t *j) {
  buf_t b = BUF_INIT;
  int64_t peer = msg_dm_peer(&j->ch, j->req.user_id);
  buf_append_str(&b, "{\"channel\":");
  msg_channel_json(&j->ch, j->req.user_id, peer ? msg_name_of(j, peer) : NULL, NULL, &b);
  buf_append_char(&b, '}');
  msg_job_reply(j, &b);
  buf_free(&b);
  msg_job_finish(j);
}

/* Asks for a DM's peer name, then replies with the channel. */
static void resolve_and_reply_channel(msg_job_t *j) {
  msg_slot_need_id(j, msg_dm_peer(&j->ch, j->req.user_id));
  msg_lookup_run(j, reply_channel);
}

static void after_create(msg_job_t *j) {
  publish_joined(j->svc, &j->ch, j->req.user_id, NULL);
  reply_channel(j);
}

/* Answers {"<key>":[item, ...],"more":bool}: items are written by item_json
 * until the reply would pass the bus payload budget; the rest is left for
 * the next page (the client pages on with after = the last id it got). */
typedef void (*item_json_fn)(msg_job_t *j, size_t i, buf_t *b);

static void reply_page(msg_job_t *j, const char *key, item_json_fn item_json) {
  size_t limit = reply_budget(j->svc);
  bool more = j->more;
  buf_t b = BUF_INIT;
  buf_printf(&b, "{\"%s\":[", key);
  for (size_t i = 0; i < j->nitems; i++) {
    size_t mark = b.len;
    if (i) buf_append_char(&b, ',');
    item_json(j, i, &b);
    if (b.len > limit && i > 0) {
      b.len = mark;
      b.data[mark] = '\0';
      more = true;
      break;
    }
  }
  buf_printf(&b, "],\"more\":%s}", more ? "true" : "false");
  msg_job_reply(j, &b);
  buf_free(&b);
  msg_job_finish(j);
}

static void list_item(msg_job_t *j, size_t i, buf_t *b) {
  channel_membership_t *row = &((channel_membership_t *)j->items)[i];
  int64_t peer = msg_dm_peer(&row->channel, j->req.user_id);
  msg_channel_json(&row->channel, j->req.user_id, peer ? msg_name_of(j, peer) : NULL,
                   &row->member, b);
}

static void reply_list(msg_job_t *j) { reply_page(j, "channels", list_item); }

static void after_list(msg_job_t *j) {
  channel_membership_t *rows = j->items;
  for (size_t i = 0; i < j->nitems; i++)
    msg_slot_need_id(j, msg_dm_peer(&rows[i].channel, j->req.user_id));
  msg_lookup_run(j, reply_list);
}

static void public_item(msg_job_t *j, size_t i, buf_t *b) {
  msg_channel_json(&((channel_rec_t *)j->items)[i], j->req.user_id, NULL, NULL, b);
}

static void after_public(msg_job_t *j) { reply_page(j, "channels", public_item); }

static void after_join(msg_job_t *j) {
  if (j->flag) {
    publish_member(j->svc, "member_joined", j->ch.id, j->req.user_id, j->req.username);
    publish_joined(j->svc, &j->ch, j->req.user_id, NULL);
  }
  resolve_and_reply_channel(j);
}

static void after_leave(msg_job_t *j) {
  if (j->flag) {
    publish_member(j->svc, "member_left", j->ch.id, j->req.user_id, j->req.username);
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"op\":\"channel_left\",\"channel_id\":%" PRId64 "}", j->ch.id);
    msg_publish(j->svc, "user", j->req.user_id, &b);
    buf_free(&b);
  }
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"ok\":true}");
  msg_job_reply(j, &b);
  buf_free(&b);
  msg_job_finish(j);
}

static void member_item(msg_job_t *j, size_t i, buf_t *b) {
  member_rec_t *row = &((member_rec_t *)j->items)[i];
  msg_member_json(row->user_id, msg_name_of(j, row->user_id), row->joined_at, b);
}

static void reply_members(msg_job_t *j) { reply_page(j, "members", member_item); }

static void after_members_list(msg_job_t *j) {
  member_rec_t *rows = j->items;
  for (size_t i = 0; i < j->nitems; i++) msg_slot_need_id(j, rows[i].user_id);
  msg_lookup_run(j, reply_members);
}

static void after_members_add(msg_job_t *j);
static void after_dm_open(msg_job_t *j);

/* members.add and dm.open: the target username has been looked up. */
static void target_resolved(msg_job_t *j) {
  msg_slot_t *t = &j->slots[0];
  if (t->status != 0) {
    j->err = t->status == -ENOENT ? MSG_E_USER_NOT_FOUND : MSG_E_UNAVAILABLE;
    msg_job_finish(j);
    return;
  }
  j->num = t->id;
  static void (*const work[])(msg_job_t *) = {[MSG_OP_MEMBERS_ADD] = work_members_add,
                                              [MSG_OP_DM_OPEN] = work_dm_open};
  msg_job_submit(j, work[j->req.op],
                 j->req.op == MSG_OP_MEMBERS_ADD ? after_members_add : after_dm_open);
}

static void after_members_add(msg_job_t *j) {
  const char *name = j->req.target;
  if (j->flag) {
    publish_member(j->svc, "member_joined", j->ch.id, j->num, name);
    publish_joined(j->svc, &j->ch, j->num, NULL);
  }
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"member\":");
  msg_member_json(j->num, name, j->mem.joined_at, &b);
  buf_append_char(&b, '}');
  msg_job_reply(j, &b);
  buf_free(&b);
  msg_job_finish(j);
}

static void after_dm_open(msg_job_t *j) {
  const char *me = j->req.username, *peer = j->req.target;
  if (j->flag) {
    publish_joined(j->svc, &j->ch, j->req.user_id, peer);
    if (j->num != j->req.user_id) publish_joined(j->svc, &j->ch, j->num, me);
  }
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"channel\":");
  msg_channel_json(&j->ch, j->req.user_id, peer, NULL, &b);
  buf_append_char(&b, '}');
  msg_job_reply(j, &b);
  buf_free(&b);
  msg_job_finish(j);
}

/* Renders the page, dropping messages from the far end (the oldest of a
 * "before" page, the newest of an "after" page) if it would not fit one
 * bus payload; "more" then says so and the cursor still works. At least
 * one message is always sent (a single message always fits). */
static void reply_history(msg_job_t *j) {
  msg_page_t *p = &j->page;
  size_t *ends = calloc(p->count + 1, sizeof *ends);
  buf_t items = BUF_INIT; /* the messages joined by commas; message i ends at ends[i] */
  for (size_t i = 0; ends && i < p->count; i++) {
    if (i) buf_append_char(&items, ',');
    msg_message_json(&p->items[i], msg_name_of(j, p->items[i].author_id), true, &items);
    ends[i] = items.len;
  }
  if (!ends || items.oom) {
    free(ends);
    buf_free(&items);
    j->err = MSG_E_UNAVAILABLE;
    msg_job_finish(j);
    return;
  }
#define START(i) ((i) == 0 ? 0 : ends[(i) - 1] + 1)
  size_t limit = reply_budget(j->svc);
  size_t from = 0, to = p->count; /* messages [from, to) are sent */
  bool more = p->more;
  if (j->req.has_after) {
    while (to > 1 && ends[to - 1] > limit) to--;
  } else {
    while (from + 1 < to && ends[to - 1] - START(from) > limit) from++;
  }
  if (from > 0 || to < p->count) more = true;
  size_t a = to > 0 ? START(from) : 0, z = to > 0 ? ends[to - 1] : 0;
#undef START
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"messages\":[");
  if (z > a) buf_append(&b, items.data + a, z - a);
  buf_printf(&b, "],\"more\":%s}", more ? "true" : "false");
  msg_job_reply(j, &b);
  buf_free(&b);
  buf_free(&items);
  free(ends);
  msg_job_finish(j);
}

static void after_history(msg_job_t *j) {
  for (size_t i = 0; i < j->page.count; i++) msg_slot_need_id(j, j->page.items[i].author_id);
  msg_lookup_run(j, reply_history);
}

static void reply_edit(msg_job_t *j) {
  const char *author = msg_name_of(j, j->msg->author_id);
  buf_t ev = BUF_INIT;
  buf_printf(&ev, "{\"op\":\"message_edited\",\"channel_id\":%" PRId64 ",\"message\":",
             j->msg->channel_id);
  msg_message_json(j->msg, author, true, &ev);
  buf_append_char(&ev, '}');
  msg_publish(j->svc, "chan", j->msg->channel_id, &ev);
  buf_free(&ev);
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"message\":");
  msg_message_json(j->msg, author, true, &b);
  buf_append_char(&b, '}');
  msg_job_reply(j, &b);
  buf_free(&b);
  msg_job_finish(j);
}

static void after_edit(msg_job_t *j) {
  msg_slot_need_id(j, j->msg->author_id);
  msg_lookup_run(j, reply_edit);
}

static void after_delete(msg_job_t *j) {
  if (j->flag && j->msg) {
    buf_t ev = BUF_INIT;
    buf_printf(&ev,
               "{\"op\":\"message_deleted\",\"channel_id\":%" PRId64 ",\"id\":\"%" PRId64
               "\",\"seq\":%" PRId64 "}",
               j->msg->channel_id, j->msg->id, j->msg->seq);
    msg_publish(j->svc, "chan", j->msg->channel_id, &ev);
    buf_free(&ev);
  }
  buf_t b = BUF_INIT;
  buf_append_str(&b, "{\"ok\":true}");
  msg_job_reply(j, &b);
  buf_free(&b);
  msg_job_finish(j);
}

static void after_read(msg_job_t *j) {
  buf_t ev = BUF_INIT;
  buf_printf(&ev, "{\"op\":\"read\",\"channel_id\":%" PRId64 ",\"seq\":%" PRId64 "}",
             j->req.channel_id, j->num);
  msg_publish(j->svc, "user", j->req.user_id, &ev);
  buf_free(&ev);
  buf_t b = BUF_INIT;
  buf_printf(&b, "{\"channel_id\":%" PRId64 ",\"last_read_seq\":%" PRId64 "}",
             j->req.channel_id, j->num);
  msg_job_reply(j, &b);
  buf_free(&b);
  msg_job_finish(j);
}

void msg_ops_start(msg_job_t *j) {
  switch (j->req.op) {
  case MSG_OP_CHANNEL_CREATE: msg_job_submit(j, work_create, after_create); break;
  case MSG_OP_CHANNEL_LIST: msg_job_submit(j, work_list, after_list); break;
  case MSG_OP_CHANNEL_PUBLIC: msg_job_submit(j, work_public, after_public); break;
  case MSG_OP_CHANNEL_GET: msg_job_submit(j, work_get, resolve_and_reply_channel); break;
  case MSG_OP_CHANNEL_JOIN: msg_job_submit(j, work_join, after_join); break;
  case MSG_OP_CHANNEL_LEAVE: msg_job_submit(j, work_leave, after_leave); break;
  case MSG_OP_MEMBERS_LIST: msg_job_submit(j, work_members_list, after_members_list); break;
  case MSG_OP_MEMBERS_ADD:
  case MSG_OP_DM_OPEN:
    if (msg_slot_add_name(j, j->req.target) != 0) {
      j->err = MSG_E_UNAVAILABLE;
      msg_job_finish(j);
      return;
    }
    msg_lookup_run(j, target_resolved);
    break;
  case MSG_OP_HISTORY: msg_job_submit(j, work_history, after_history); break;
  case MSG_OP_SEND: msg_send_start(j); break;
  case MSG_OP_EDIT: msg_job_submit(j, work_edit, after_edit); break;
  case MSG_OP_DELETE: msg_job_submit(j, work_delete, after_delete); break;
  case MSG_OP_READ: msg_job_submit(j, work_read, after_read); break;
  default:
    j->err = MSG_E_BAD_REQUEST;
    msg_job_finish(j);
    break;
  }
}

