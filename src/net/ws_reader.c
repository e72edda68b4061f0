#include "net/ws_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Budget from the gateway's memory plan: ~1 KiB per idle connection in all,
 * of which this is one part. */
_Static_assert(sizeof(ws_reader_t) <= 48, "ws_reader_t must stay small");

enum {
  PH_HEADER,  /* at a frame boundary (scratch may hold a partial header) */
  PH_PAYLOAD, /* inside a frame whose payload did not fit in one feed */
  PH_CLOSED,  /* close frame delivered: ignore everything */
  PH_DEAD,    /* protocol error or -ENOMEM: must not be fed again */
};

#define FIN_BIT 0x80

/* The block's layout is [msg_len bytes of the message][scratch_len bytes]:
 * scratch is a partial header (at a frame boundary) or a partial control
 * payload, which can arrive between two fragments of a message. */

void ws_reader_init(ws_reader_t *r) {
  memset(r, 0, sizeof *r);
  r->phase = PH_HEADER;
  utf8_stream_init(&r->utf8);
}

static void free_block(ws_reader_t *r) {
  free(r->buf);
  r->buf = NULL;
  r->cap = 0;
}

static void end_message(ws_reader_t *r) {
  free_block(r);
  r->msg_len = 0;
  r->msg_op = 0;
  r->scratch_len = 0;
}

/* Frees the block when it holds nothing (no message, no scratch). Writes
 * only zeros, so it is also allowed after a callback. */
static void release_if_empty(ws_reader_t *r) {
  if (r->msg_len == 0 && r->scratch_len == 0) free_block(r);
}

/* A protocol violation or -ENOMEM found by the reader itself (never a
 * callback's value: after a callback the reader may already have been
 * freed and its memory zeroed by the caller, see the header). */
static int fail(ws_reader_t *r, int err) {
  end_message(r);
  r->phase = PH_DEAD;
  return err;
}

void ws_reader_free(ws_reader_t *r) {
  free(r->buf);
  ws_reader_init(r);
}

size_t ws_reader_buffered(const ws_reader_t *r) { return r->cap; }

/* Makes room for `need` bytes. Grows geometrically, so a payload trickling
 * in costs amortised O(1) per byte, but never past `limit` (what the
 * current frame can still need): memory follows the bytes actually
 * received, not a length a peer merely announced. */
static int reserve(ws_reader_t *r, size_t need, size_t limit) {
  if (need <= r->cap) return 0;
  size_t ncap = r->cap < 64 ? 128 : (r->cap > SIZE_MAX / 2 ? SIZE_MAX : r->cap * 2);
  if (ncap > limit) ncap = limit;
  if (ncap < need) ncap = need;
  uint8_t *p = realloc(r->buf, ncap);
  if (!p) return -ENOMEM;
  r->buf = p;
  r->cap = ncap;
  return 0;
}

/* Keeps mask[0] the key byte for the next payload byte, so pieces of a
 * payload can be unmasked with offset 0 and no position has to be stored. */
static void rotate_mask(uint8_t m[4], size_t consumed) {
  size_t k = consumed & 3;
  if (!k) return;
  uint8_t t[4];
  for (size_t i = 0; i < 4; i++) t[i] = m[(i + k) & 3];
  memcpy(m, t, 4);
}

/* A whole control payload (unmasked). May end the reader (close). */
static int deliver_control(ws_reader_t *r, uint8_t op, uint8_t *p, size_t n,
                           const ws_reader_events_t *ev, void *arg) {
  if (op != WS_OP_CLOSE) {
    int (*cb)(void *, const uint8_t *, size_t) = op == WS_OP_PING ? ev->on_ping : ev->on_pong;
    int rc = cb ? cb(arg, p, n) : 0;
    release_if_empty(r); /* after the callback: p may point into the block */
    return rc;
  }

  unsigned code = WS_CLOSE_NO_STATUS;
  const char *reason = (const char *)p;
  size_t reason_len = 0;
  if (n == 1) return fail(r, WS_ERR_CLOSE_PAYLOAD);
  if (n >= 2) {
    code = (unsigned)p[0] << 8 | p[1];
    if (!ws_close_code_valid_on_wire(code)) return fail(r, WS_ERR_CLOSE_CODE);
    reason += 2;
    reason_len = n - 2;
    if (!utf8_valid((const uint8_t *)reason, reason_len)) return fail(r, WS_ERR_CLOSE_REASON_UTF8);
  }
  r->phase = PH_CLOSED;
  int rc = ev->on_close ? ev->on_close(arg, code, reason, reason_len) : 0;
  end_message(r); /* after the callback (p may point into the block); writes only zeros */
  return rc;
}

/* The current frame's last payload byte has arrived (the frame's bytes are
 * in the block). */
static int finish_frame(ws_reader_t *r, const ws_reader_events_t *ev, void *arg) {
  uint8_t op = r->frame_op & 0x0F;
  uint8_t empty = 0; /* a valid pointer for empty payloads with no block */
  r->phase = PH_HEADER;
  if (ws_opcode_is_control(op)) {
    uint8_t *p = r->buf ? r->buf + r->msg_len : &empty;
    size_t n = r->scratch_len;
    r->scratch_len = 0;
    return deliver_control(r, op, p, n, ev, arg);
  }
  if (!(r->frame_op & FIN_BIT)) return 0;
  if (r->msg_op == WS_OP_TEXT && !utf8_stream_complete(&r->utf8)) return fail(r, WS_ERR_BAD_UTF8);
  int rc = ev->on_message ? ev->on_message(arg, r->msg_op, r->buf ? r->buf : &empty, r->msg_len) : 0;
  end_message(r); /* writes only zeros: safe even if the callback freed r */
  return rc;
}

/* Copies (and unmasks) as much of the current frame's payload as `data`
 * holds into the block; finishes the frame when it is complete. */
static int payload_step(ws_reader_t *r, uint8_t **data, size_t *len, const ws_reader_events_t *ev,
                        void *arg) {
  size_t n = *len < r->remaining ? *len : (size_t)r->remaining;
  if (n > 0) {
    bool control = ws_opcode_is_control(r->frame_op & 0x0F);
    size_t at = r->msg_len + (control ? r->scratch_len : 0);
    uint64_t limit = (uint64_t)at + r->remaining;
    int rc = reserve(r, at + n, limit > SIZE_MAX ? SIZE_MAX : (size_t)limit);
    if (rc) return fail(r, rc);
    uint8_t *dst = r->buf + at;
    ws_mask_copy(dst, *data, n, r->mask, 0);
    rotate_mask(r->mask, n);
    if (control) {
      r->scratch_len = (uint8_t)(r->scratch_len + n);
    } else {
      /* Validate each piece as it lands: a bad byte closes the connection
       * now rather than after the rest of a large message is buffered. */
      if (r->msg_op == WS_OP_TEXT && !utf8_stream_feed(&r->utf8, dst, n)) return fail(r, WS_ERR_BAD_UTF8);
      r->msg_len += n;
    }
    r->remaining -= n;
    *data += n;
    *len -= n;
  }
  return r->remaining ? 0 : finish_frame(r, ev, arg);
}

/* A header was parsed and consumed; the payload starts at *data. */
static int start_frame(ws_reader_t *r, const ws_frame_header_t *h, uint8_t **data, size_t *len,
                       uint64_t max_message, const ws_reader_events_t *ev, void *arg) {
  uint8_t op = h->opcode;
  bool whole = h->payload_len <= *len;
  if (ws_opcode_is_control(op)) {
    if (whole) { /* zero-copy */
      size_t n = (size_t)h->payload_len;
      uint8_t *p = *data;
      ws_mask_apply(p, n, h->mask, 0);
      *data += n;
      *len -= n;
      return deliver_control(r, op, p, n, ev, arg);
    }
  } else {
    if (op == WS_OP_CONT) {
      if (!r->msg_op) return fail(r, WS_ERR_UNEXPECTED_CONT);
    } else if (r->msg_op) {
      return fail(r, WS_ERR_EXPECTED_CONT);
    }
    if (r->msg_len > max_message || h->payload_len > max_message - r->msg_len)
      return fail(r, WS_ERR_MESSAGE_TOO_BIG);
    if (op != WS_OP_CONT && h->fin && whole) { /* zero-copy */
      size_t n = (size_t)h->payload_len;
      uint8_t *p = *data;
      ws_mask_apply(p, n, h->mask, 0);
      if (op == WS_OP_TEXT && !utf8_valid(p, n)) return fail(r, WS_ERR_BAD_UTF8);
      *data += n;
      *len -= n;
      int rc = ev->on_message ? ev->on_message(arg, op, p, n) : 0;
      release_if_empty(r); /* a stashed header's block */
      return rc;
    }
    if (op != WS_OP_CONT) {
      r->msg_op = op;
      utf8_stream_init(&r->utf8);
    }
  }
  r->phase = PH_PAYLOAD;
  r->frame_op = (uint8_t)(op | (h->fin ? FIN_BIT : 0));
  r->remaining = h->payload_len;
  memcpy(r->mask, h->mask, 4);
  return payload_step(r, data, len, ev, arg);
}

/* Parses a header from scratch + data, or from data alone when no partial
 * header is stashed (the common case: no copy). Returns the header length,
 * 0 after stashing all of data (incomplete), or an error. *used is the
 * number of bytes taken from data. */
static int take_header(ws_reader_t *r, const uint8_t *data, size_t len, ws_frame_header_t *h,
                       size_t *used) {
  size_t have = r->scratch_len;
  if (have == 0) {
    int rc = ws_frame_parse_client_header(data, len, h);
    if (rc != 0) {
      *used = rc > 0 ? (size_t)rc : 0;
      return rc;
    }
  }
  /* Incomplete: len < WS_MAX_HEADER - have, or the header straddles. */
  size_t take = len < WS_MAX_HEADER - have ? len : WS_MAX_HEADER - have;
  int rc = reserve(r, r->msg_len + WS_MAX_HEADER, r->msg_len + WS_MAX_HEADER);
  if (rc) return rc;
  uint8_t *s = r->buf + r->msg_len;
  memcpy(s + have, data, take);
  rc = have ? ws_frame_parse_client_header(s, have + take, h) : 0;
  if (rc > 0) {
    r->scratch_len = 0;
    *used = (size_t)rc - have;
    return rc;
  }
  if (rc < 0) return rc;
  /* Still incomplete, so take == len: every byte is in scratch now. */
  r->scratch_len = (uint8_t)(have + take);
  *used = take;
  return 0;
}

int ws_reader_feed(ws_reader_t *r, uint8_t *data, size_t len, uint64_t max_message,
                   const ws_reader_events_t *ev, void *arg) {
  if (r->phase == PH_CLOSED) return 0;
  if (r->phase == PH_DEAD) return -EINVAL;
  int rc = 0;
  while (len > 0 && r->phase != PH_CLOSED) {
    if (r->phase == PH_HEADER) {
      ws_frame_header_t h;
      size_t used = 0;
      int got = take_header(r, data, len, &h, &used);
      if (got < 0) return fail(r, got);
      data += used;
      len -= used;
      if (got == 0) break;
      rc = start_frame(r, &h, &data, &len, max_message, ev, arg);
    } else {
      rc = payload_step(r, &data, &len, ev, arg);
    }
    /* An error has already finished the reader; a callback's value is
     * passed through without touching r (the callback may have freed it). */
    if (rc) return rc;
  }
  /* Nothing incomplete is held (e.g. a stashed header was completed and
   * its frame delivered zero-copy): an idle reader owns no memory. */
  release_if_empty(r);
  return 0;
}
