/*
 * bus.c — argument checks shared by every engine, vtable dispatch, and the
 * subject grammar. Checking here means an engine never sees a bad subject or
 * an oversized payload, and every engine returns the same error for the same
 * mistake.
 */
#include "bus/bus.h"

#include <string.h>

/* A byte that may never appear in a subject or queue name: NATS splits its
 * protocol lines on whitespace, so spaces and control characters would cut a
 * subject in two on the wire. */
static bool bad_byte(unsigned char c) { return c <= ' ' || c == 0x7f; }

bool bus_subject_valid(const char *subject, bool allow_wildcards) {
  if (!subject) return false;
  size_t tok_len = 0;
  bool tok_wild = false; /* the current token contains '*' or '>' */
  for (size_t i = 0;; i++) {
    unsigned char c = (unsigned char)subject[i];
    if (c == '.' || c == '\0') {
      if (tok_len == 0) return false;
      if (tok_wild) {
        /* a wildcard must be a whole token, and '>' must be the last one */
        if (!allow_wildcards || tok_len != 1) return false;
        if (subject[i - 1] == '>' && c != '\0') return false;
      }
      if (c == '\0') return i <= BUS_SUBJECT_MAX;
      tok_len = 0;
      tok_wild = false;
      continue;
    }
    if (bad_byte(c) || i >= BUS_SUBJECT_MAX) return false;
    if (c == '*' || c == '>') tok_wild = true;
    tok_len++;
  }
}

bool bus__subject_match(const char *p, const char *s) {
  /* Both point at the start of a token on every pass. */
  for (;;) {
    if (p[0] == '>') return true; /* valid patterns have '>' last; s has >= 1 token left */
    if (p[0] == '*') {
      p++;
      while (*s && *s != '.') s++;
    } else {
      while (*p && *p != '.') {
        if (*p != *s) return false; /* also catches s ending early ('.' or NUL) */
        p++;
        s++;
      }
      if (*s && *s != '.') return false; /* subject token is longer: "ab" vs "abc" */
    }
    if (*p == '\0' || *s == '\0') return *p == *s;
    p++;
    s++;
  }
}

bool bus_subject_match(const char *pattern, const char *subject) {
  if (!bus_subject_valid(pattern, true) || !bus_subject_valid(subject, false)) return false;
  return bus__subject_match(pattern, subject);
}

static bool queue_valid(const char *q) {
  size_t i = 0;
  for (; q[i]; i++)
    if (bad_byte((unsigned char)q[i]) || i >= BUS_SUBJECT_MAX) return false;
  return i > 0;
}

/* Checks shared by publish and request. */
static int check_payload(const bus_t *bus, const void *data, size_t len) {
  if (len > 0 && !data) return -EINVAL;
  if (len > bus->max_payload) return -EMSGSIZE;
  return 0;
}

int bus_publish(bus_t *bus, const char *subject, const char *reply, const void *data, size_t len) {
  if (!bus || !bus_subject_valid(subject, false)) return -EINVAL;
  if (reply && !bus_subject_valid(reply, false)) return -EINVAL;
  int rc = check_payload(bus, data, len);
  if (rc < 0) return rc;
  if (bus->closed) return -ENOTCONN;
  return bus->ops->publish(bus, subject, reply, data, len);
}

int bus_subscribe(bus_t *bus, const char *subject, const char *queue, bus_msg_cb cb, void *arg,
                  bus_sub_t **out) {
  if (out) *out = NULL;
  if (!bus || !cb || !bus_subject_valid(subject, true)) return -EINVAL;
  if (queue && !queue_valid(queue)) return -EINVAL;
  if (bus->closed) return -ENOTCONN;
  return bus->ops->subscribe(bus, subject, queue, cb, arg, out);
}

int bus_unsubscribe(bus_sub_t *sub) {
  if (!sub) return -EINVAL;
  return sub->bus->ops->unsubscribe(sub);
}

int bus_request(bus_t *bus, const char *subject, const void *data, size_t len, uint64_t timeout_ms,
                bus_reply_cb cb, void *arg, uint64_t *req_id) {
  if (req_id) *req_id = 0;
  if (!bus || !cb || timeout_ms == 0 || !bus_subject_valid(subject, false)) return -EINVAL;
  int rc = check_payload(bus, data, len);
  if (rc < 0) return rc;
  if (bus->closed) return -ENOTCONN;
  return bus->ops->request(bus, subject, data, len, timeout_ms, cb, arg, req_id);
}

int bus_request_cancel(bus_t *bus, uint64_t req_id) {
  if (!bus || req_id == 0) return -ENOENT;
  return bus->ops->request_cancel(bus, req_id);
}

int bus_respond(bus_t *bus, const bus_msg_t *msg, const void *data, size_t len) {
  if (!msg || !msg->reply) return -EINVAL;
  return bus_publish(bus, msg->reply, NULL, data, len);
}

bool bus_is_connected(const bus_t *bus) { return !bus->closed && bus->ops->is_connected(bus); }

const char *bus_kind(const bus_t *bus) { return bus->ops->kind; }

size_t bus_max_payload(const bus_t *bus) { return bus->max_payload; }

void bus_close(bus_t *bus, void (*on_closed)(void *arg), void *arg) {
  if (bus->closed) return;
  bus->closed = true;
  bus->ops->close(bus, on_closed, arg);
}
