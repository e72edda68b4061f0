/*
 * messages_reply.c — the JSON the messages service answers and publishes.
 *
 * Built with buf_t rather than jansson: shapes are fixed, and every string
 * that goes in is escaped by buf_append_json_escaped (store rows are bytes
 * the service validated on the way in, but escaping does not rely on it).
 * Message ids are rendered as decimal strings: they are 63-bit snowflakes,
 * beyond the 2^53 a JavaScript number holds exactly. Channel and user ids
 * are SQLite row ids and stay numbers.
 */
#include "services/messages/messages_internal.h"

#include <inttypes.h>
#include <string.h>

#include <jansson.h>

static const struct {
  const char *code;
  int status;
  const char *message;
} errs[MSG_E_COUNT] = {
    [MSG_OK] = {"ok", 200, "ok"},
    [MSG_E_BAD_REQUEST] = {"bad_request", 400, "malformed request"},
    [MSG_E_INVALID_NAME] = {"invalid_name", 400, "invalid channel name"},
    [MSG_E_INVALID_TOPIC] = {"invalid_topic", 400, "invalid topic"},
    [MSG_E_INVALID_BODY] = {"invalid_body", 400, "invalid message body"},
    [MSG_E_INVALID_ATTACHMENTS] = {"invalid_attachments", 400, "invalid attachments"},
    [MSG_E_FORBIDDEN] = {"forbidden", 403, "not allowed"},
    [MSG_E_NOT_FOUND] = {"not_found", 404, "not found"},
    [MSG_E_USER_NOT_FOUND] = {"user_not_found", 404, "user not found"},
    [MSG_E_NAME_TAKEN] = {"name_taken", 409, "channel name is already taken"},
    [MSG_E_TOO_MANY_CHANNELS] = {"too_many_channels", 409, "member of too many channels (1000); leave one first"},
    [MSG_E_OVERLOADED] = {"overloaded", 503, "too many messages waiting, retry later"},
    [MSG_E_UNAVAILABLE] = {"unavailable", 503, "service temporarily unavailable"},
};

static const char *const op_names[MSG_OP_COUNT] = {
    [MSG_OP_CHANNEL_CREATE] = "channel.create", [MSG_OP_CHANNEL_LIST] = "channel.list",
    [MSG_OP_CHANNEL_PUBLIC] = "channel.public", [MSG_OP_CHANNEL_GET] = "channel.get",
    [MSG_OP_CHANNEL_JOIN] = "channel.join",     [MSG_OP_CHANNEL_LEAVE] = "channel.leave",
    [MSG_OP_MEMBERS_LIST] = "members.list",     [MSG_OP_MEMBERS_ADD] = "members.add",
    [MSG_OP_DM_OPEN] = "dm.open",               [MSG_OP_HISTORY] = "history",
    [MSG_OP_SEND] = "send",                     [MSG_OP_EDIT] = "edit",
    [MSG_OP_DELETE] = "delete",                 [MSG_OP_READ] = "read",
    [MSG_OP_SEND_BATCH] = "send.batch",
};

static const char *const op_subjects[MSG_OP_COUNT] = {
    [MSG_OP_CHANNEL_CREATE] = "messages.channel.create",
    [MSG_OP_CHANNEL_LIST] = "messages.channel.list",
    [MSG_OP_CHANNEL_PUBLIC] = "messages.channel.public",
    [MSG_OP_CHANNEL_GET] = "messages.channel.get",
    [MSG_OP_CHANNEL_JOIN] = "messages.channel.join",
    [MSG_OP_CHANNEL_LEAVE] = "messages.channel.leave",
    [MSG_OP_MEMBERS_LIST] = "messages.members.list",
    [MSG_OP_MEMBERS_ADD] = "messages.members.add",
    [MSG_OP_DM_OPEN] = "messages.dm.open",
    [MSG_OP_HISTORY] = "messages.history",
    [MSG_OP_SEND] = "messages.send",
    [MSG_OP_EDIT] = "messages.edit",
    [MSG_OP_DELETE] = "messages.delete",
    [MSG_OP_READ] = "messages.read",
    [MSG_OP_SEND_BATCH] = "messages.send.batch",
};

const char *msg_op_name(msg_op_t op) {
  return (unsigned)op < MSG_OP_COUNT ? op_names[op] : "unknown";
}

const char *msg_op_subject(msg_op_t op) {
  return (unsigned)op < MSG_OP_COUNT ? op_subjects[op] : NULL;
}

const char *msg_err_code(msg_err_t e) {
  return (unsigned)e < MSG_E_COUNT ? errs[e].code : "unavailable";
}

int msg_err_status(msg_err_t e) { return (unsigned)e < MSG_E_COUNT ? errs[e].status : 503; }

void msg_err_json(msg_err_t e, const char *detail, buf_t *out) {
  if ((unsigned)e >= MSG_E_COUNT || e == MSG_OK) e = MSG_E_UNAVAILABLE;
  const char *msg = detail ? detail : errs[e].message;
  buf_printf(out, "{\"error\":{\"code\":\"%s\",\"message\":\"", errs[e].code);
  buf_append_json_escaped(out, msg, strlen(msg));
  buf_printf(out, "\",\"status\":%d}}", errs[e].status);
}

static void json_str(buf_t *out, const char *s, size_t n) {
  buf_append_char(out, '"');
  buf_append_json_escaped(out, s, n);
  buf_append_char(out, '"');
}

/* A username or null. */
static void json_name(buf_t *out, const char *name) {
  if (name)
    json_str(out, name, strnlen(name, USER_NAME_MAX));
  else
    buf_append_str(out, "null");
}

int64_t msg_dm_peer(const channel_rec_t *c, int64_t viewer) {
  if (c->kind != CHANNEL_KIND_DM) return 0;
  return c->dm_user_lo == viewer ? c->dm_user_hi : c->dm_user_lo;
}

void msg_channel_json(const channel_rec_t *c, int64_t viewer, const char *peer,
                      const member_rec_t *m, buf_t *out) {
  bool dm = c->kind == CHANNEL_KIND_DM;
  buf_printf(out, "{\"id\":%" PRId64 ",\"kind\":\"%s\",\"name\":", c->id, dm ? "dm" : "channel");
  if (dm)
    buf_append_str(out, "null");
  else
    json_str(out, c->name, strnlen(c->name, sizeof c->name));
  buf_append_str(out, ",\"topic\":");
  json_str(out, c->topic, strnlen(c->topic, sizeof c->topic));
  buf_printf(out, ",\"private\":%s,\"owner_id\":", c->is_private ? "true" : "false");
  if (c->owner_id > 0)
    buf_printf(out, "%" PRId64, c->owner_id);
  else
    buf_append_str(out, "null");
  buf_printf(out, ",\"created_at\":%" PRId64 ",\"last_seq\":%" PRId64, c->created_at,
             c->last_seq);
  if (dm) {
    buf_printf(out, ",\"peer_id\":%" PRId64 ",\"peer\":", msg_dm_peer(c, viewer));
    json_name(out, peer);
  }
  if (m) {
    int64_t unread = c->last_seq - m->last_read_seq;
    buf_printf(out, ",\"last_read_seq\":%" PRId64 ",\"unread\":%" PRId64, m->last_read_seq,
               unread > 0 ? unread : 0);
  }
  buf_append_char(out, '}');
}

/* Stored attachments are the service's own compact array text; anything
 * else (a row written behind its back) must not break the reply's JSON. */
static bool attachments_ok(str_t a) {
  json_t *j = json_loadb(a.p, a.n, JSON_REJECT_DUPLICATES, NULL);
  bool ok = json_is_array(j);
  json_decref(j);
  return ok;
}

void msg_message_json(const msg_rec_t *m, const char *author, bool full, buf_t *out) {
  buf_append_str(out, "{\"id\":\"");
  buf_append_i64(out, m->id);
  buf_append_str(out, "\",\"seq\":");
  buf_append_i64(out, m->seq);
  buf_append_str(out, ",\"author_id\":");
  buf_append_i64(out, m->author_id);
  buf_append_str(out, ",\"author\":");
  json_name(out, author);
  buf_append_str(out, ",\"body\":");
  json_str(out, m->body.p ? m->body.p : "", m->body.n);
  buf_append_str(out, ",\"attachments\":");
  if (m->attachments.p && attachments_ok(m->attachments))
    buf_append(out, m->attachments.p, m->attachments.n);
  else
    buf_append_str(out, "null");
  buf_append_str(out, ",\"nonce\":");
  if (m->nonce.p)
    json_str(out, m->nonce.p, m->nonce.n);
  else
    buf_append_str(out, "null");
  buf_append_str(out, ",\"created_at\":");
  buf_append_i64(out, m->created_at);
  if (full) {
    buf_append_str(out, ",\"edited_at\":");
    if (m->edited_at > 0)
      buf_printf(out, "%" PRId64, m->edited_at);
    else
      buf_append_str(out, "null");
    buf_printf(out, ",\"deleted\":%s", m->deleted ? "true" : "false");
  }
  buf_append_char(out, '}');
}

void msg_member_json(int64_t user_id, const char *username, int64_t joined_at, buf_t *out) {
  buf_printf(out, "{\"user_id\":%" PRId64, user_id);
  if (username) {
    buf_append_str(out, ",\"username\":");
    json_name(out, username);
  }
  buf_printf(out, ",\"joined_at\":%" PRId64 "}", joined_at);
}
