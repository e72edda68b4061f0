/* wsc.c — see wsc.h. One allocation per client (handle, requests and state
 * together); input is parsed in place from the client's buffer; output is
 * corked and flushed from a uv_prepare callback, i.e. right before the loop
 * sleeps, so a burst of sends to one client becomes one write. */
#include "load/wsc.h"

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "net/ws_frame.h"

/* Server messages are a few KiB; a 16 MiB frame means a broken stream. */
#define WSC_MAX_FRAME (16u << 20)
#define WSC_MAX_HANDSHAKE 8192
#define WSC_CLOSE_WAIT_MS 2000

enum wsc_state { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DONE };

struct wsc_client {
  uv_tcp_t tcp; /* first: the handle's address is the client's */
  uv_connect_t creq;
  uv_write_t wreq;
  wsc_engine_t *eng;
  void *user;
  wsc_client_t *prev, *next;   /* all clients */
  wsc_client_t *dprev, *dnext; /* clients with unflushed output */
  bool dirty, writing, notified, close_after_write;
  enum wsc_state st;
  uint8_t msg_op;
  bool in_msg;
  uint64_t close_deadline;
  char accept[29];
  buf_t in, msg, out, wbuf;
};

struct wsc_engine {
  uv_loop_t *loop;
  target_t target;
  struct sockaddr_in src;
  bool bind_src;
  wsc_callbacks_t cb;
  uv_prepare_t flush;
  uv_timer_t sweep;
  wsc_client_t *all, *dirty;
  size_t live;
  uint64_t rng;
  bool freeing;
  int handles_open;
  uint64_t read_us; /* when the read being parsed returned */
  char rbuf[65536]; /* shared by all reads: what a read leaves unparsed is copied out */
};

static uint32_t rng_next(wsc_engine_t *e) {
  /* xorshift64*: masks need to be unpredictable to intermediaries, not
   * secret; seeded from libsodium. */
  e->rng ^= e->rng >> 12;
  e->rng ^= e->rng << 25;
  e->rng ^= e->rng >> 27;
  return (uint32_t)((e->rng * UINT64_C(2685821657736338717)) >> 32);
}

static void mark_dirty(wsc_client_t *c) {
  if (c->dirty) return;
  wsc_engine_t *e = c->eng;
  c->dirty = true;
  c->dprev = NULL;
  c->dnext = e->dirty;
  if (e->dirty) e->dirty->dprev = c;
  e->dirty = c;
}

static void unmark_dirty(wsc_client_t *c) {
  if (!c->dirty) return;
  if (c->dprev) c->dprev->dnext = c->dnext;
  else c->eng->dirty = c->dnext;
  if (c->dnext) c->dnext->dprev = c->dprev;
  c->dirty = false;
}

static void on_handle_closed(uv_handle_t *h) {
  wsc_client_t *c = (wsc_client_t *)h;
  wsc_engine_t *e = c->eng;
  unmark_dirty(c);
  if (c->prev) c->prev->next = c->next;
  else e->all = c->next;
  if (c->next) c->next->prev = c->prev;
  e->live--;
  if (e->freeing && e->live == 0 && e->handles_open == 0) free(e);
  buf_free(&c->in);
  buf_free(&c->msg);
  buf_free(&c->out);
  buf_free(&c->wbuf);
  free(c);
}

static void notify(wsc_client_t *c, int code, int err) {
  if (c->notified) return;
  c->notified = true;
  c->eng->cb.on_close(c, c->user, code, err);
}

/* Ends the client: the owner hears about it once, the handle closes after
 * any write in flight (so an echoed close frame still goes out). */
static void finish(wsc_client_t *c, int code, int err) {
  notify(c, code, err);
  if (c->st == ST_DONE) return;
  c->st = ST_DONE;
  if (c->writing) {
    c->close_after_write = true;
    return;
  }
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_write(uv_write_t *req, int status) {
  wsc_client_t *c = req->data;
  c->writing = false;
  buf_reset(&c->wbuf);
  if (c->close_after_write) {
    c->close_after_write = false;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    return;
  }
  if (status < 0) {
    finish(c, WS_CLOSE_ABNORMAL, status);
    return;
  }
  if (c->out.len) mark_dirty(c);
}

static void flush_one(wsc_client_t *c) {
  if (c->writing || c->out.len == 0 || c->st == ST_DONE) return;
  buf_t t = c->wbuf;
  c->wbuf = c->out;
  c->out = t;
  uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
  c->wreq.data = c;
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc < 0) {
    buf_reset(&c->wbuf);
    finish(c, WS_CLOSE_ABNORMAL, rc);
    return;
  }
  c->writing = true;
}

static void on_prepare(uv_prepare_t *p) {
  wsc_engine_t *e = p->data;
  while (e->dirty) {
    wsc_client_t *c = e->dirty;
    unmark_dirty(c);
    flush_one(c);
  }
}

static int queue_frame(wsc_client_t *c, uint8_t op, const void *data, size_t len) {
  uint8_t h[14];
  size_t hl = 2;
  h[0] = (uint8_t)(0x80 | op);
  if (len < 126) {
    h[1] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    h[1] = 0x80 | 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    hl = 4;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    hl = 10;
  }
  uint32_t m = rng_next(c->eng);
  memcpy(h + hl, &m, 4);
  if (buf_reserve(&c->out, hl + 4 + len) < 0) return -ENOMEM;
  memcpy(c->out.data + c->out.len, h, hl + 4);
  ws_mask_copy((uint8_t *)c->out.data + c->out.len + hl + 4, data, len, h + hl, 0);
  c->out.len += hl + 4 + len;
  mark_dirty(c);
  return 0;
}

int wsc_send_text(wsc_client_t *c, const char *data, size_t len) {
  if (c->st != ST_OPEN) return -ENOTCONN;
  return queue_frame(c, WS_OP_TEXT, data, len);
}

void wsc_close(wsc_client_t *c, uint16_t code) {
  if (c->st == ST_OPEN) {
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    queue_frame(c, WS_OP_CLOSE, p, 2);
    c->st = ST_CLOSING;
    c->close_deadline = uv_now(c->eng->loop) + WSC_CLOSE_WAIT_MS;
  } else if (c->st != ST_CLOSING && c->st != ST_DONE) {
    finish(c, WS_CLOSE_ABNORMAL, -ECANCELED);
  }
}

/* Returns bytes consumed, or -1 once the client is finished. */
static long parse_frames(wsc_client_t *c, uint8_t *p, size_t len) {
  size_t off = 0;
  while (off < len && c->st != ST_DONE) {
    ws_frame_header_t h;
    int r = ws_frame_parse_header(p + off, len - off, &h);
    if (r < 0) {
      finish(c, WS_CLOSE_ABNORMAL, r);
      return -1;
    }
    if (r == 0) break;
    if (h.payload_len > WSC_MAX_FRAME) {
      finish(c, WS_CLOSE_ABNORMAL, WS_ERR_MESSAGE_TOO_BIG);
      return -1;
    }
    if (len - off < h.header_len + h.payload_len) break;
    uint8_t *pl = p + off + h.header_len;
    size_t n = (size_t)h.payload_len;
    off += h.header_len + n;
    if (h.masked) ws_mask_apply(pl, n, h.mask, 0);
    switch (h.opcode) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
      if (c->in_msg) {
        finish(c, WS_CLOSE_ABNORMAL, WS_ERR_EXPECTED_CONT);
        return -1;
      }
      if (h.fin) {
        c->eng->cb.on_text(c, c->user, (const char *)pl, n);
      } else {
        c->in_msg = true;
        c->msg_op = h.opcode;
        buf_reset(&c->msg);
        buf_append(&c->msg, pl, n);
      }
      break;
    case WS_OP_CONT:
      if (!c->in_msg) {
        finish(c, WS_CLOSE_ABNORMAL, WS_ERR_UNEXPECTED_CONT);
        return -1;
      }
      buf_append(&c->msg, pl, n);
      if (c->msg.oom || c->msg.len > WSC_MAX_FRAME) {
        finish(c, WS_CLOSE_ABNORMAL, -ENOMEM);
        return -1;
      }
      if (h.fin) {
        c->in_msg = false;
        c->eng->cb.on_text(c, c->user, c->msg.data, c->msg.len);
      }
      break;
    case WS_OP_PING:
      queue_frame(c, WS_OP_PONG, pl, n);
      break;
    case WS_OP_PONG:
      break;
    case WS_OP_CLOSE: {
      int code = n >= 2 ? (pl[0] << 8 | pl[1]) : WS_CLOSE_NO_STATUS;
      if (c->st == ST_OPEN) queue_frame(c, WS_OP_CLOSE, pl, n >= 2 ? 2 : 0);
      flush_one(c);
      finish(c, code, 0);
      return -1;
    }
    default:
      finish(c, WS_CLOSE_ABNORMAL, WS_ERR_OPCODE);
      return -1;
    }
  }
  return (long)off;
}

static void handle_handshake(wsc_client_t *c) {
  char *end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
  if (!end) {
    if (c->in.len > WSC_MAX_HANDSHAKE) finish(c, WS_CLOSE_ABNORMAL, WSC_ERR_HANDSHAKE);
    return;
  }
  int status = 0;
  *end = '\0';
  if (sscanf(c->in.data, "HTTP/1.1 %d", &status) != 1 || status != 101) {
    finish(c, status, WSC_ERR_HANDSHAKE);
    return;
  }
  const char *a = strcasestr(c->in.data, "\r\nSec-WebSocket-Accept:");
  if (a) {
    a += 23;
    while (*a == ' ') a++;
  }
  if (!a || strncmp(a, c->accept, 28) != 0) {
    finish(c, 101, WSC_ERR_HANDSHAKE);
    return;
  }
  size_t hl = (size_t)(end + 4 - c->in.data);
  memmove(c->in.data, c->in.data + hl, c->in.len - hl);
  c->in.len -= hl;
  c->st = ST_OPEN;
  c->eng->cb.on_open(c, c->user);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  wsc_engine_t *e = ((wsc_client_t *)h)->eng;
  *b = uv_buf_init(e->rbuf, sizeof e->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  wsc_client_t *c = (wsc_client_t *)s;
  if (nread < 0) {
    finish(c, WS_CLOSE_ABNORMAL, (int)nread);
    return;
  }
  if (nread == 0 || c->st == ST_DONE) return;
  c->eng->read_us = uv_hrtime() / 1000u;
  /* The common case, nothing left over from the last read: parse in place
   * and keep only an incomplete last frame. */
  if (c->in.len == 0 && c->st == ST_OPEN) {
    long used = parse_frames(c, (uint8_t *)b->base, (size_t)nread);
    if (used < 0 || used == nread) return;
    buf_append(&c->in, b->base + used, (size_t)(nread - used));
    if (c->in.oom) finish(c, WS_CLOSE_ABNORMAL, -ENOMEM);
    return;
  }
  buf_append(&c->in, b->base, (size_t)nread);
  if (c->in.oom) {
    finish(c, WS_CLOSE_ABNORMAL, -ENOMEM);
    return;
  }
  if (c->st == ST_HANDSHAKE) {
    handle_handshake(c);
    if (c->st != ST_OPEN) return;
  }
  long used = parse_frames(c, (uint8_t *)c->in.data, c->in.len);
  if (used < 0) return;
  if (used > 0) {
    memmove(c->in.data, c->in.data + used, c->in.len - (size_t)used);
    c->in.len -= (size_t)used;
  }
}

static void on_connect(uv_connect_t *req, int status) {
  wsc_client_t *c = req->data;
  if (c->st == ST_DONE) return;
  if (status < 0) {
    finish(c, WS_CLOSE_ABNORMAL, status);
    return;
  }
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc < 0) {
    finish(c, WS_CLOSE_ABNORMAL, rc);
    return;
  }
  c->st = ST_HANDSHAKE;
  mark_dirty(c); /* the upgrade request queued in wsc_connect */
}

uint64_t wsc_read_us(const wsc_client_t *c) { return c->eng->read_us; }

void wsc_engine_bind(wsc_engine_t *e, const struct sockaddr_in *src) {
  e->src = *src;
  e->bind_src = true;
}

/* IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), where the
 * kernel may reuse a port across destinations. */
static int bind_source(wsc_engine_t *e, wsc_client_t *c) {
  uv_os_fd_t fd;
  int rc = uv_fileno((uv_handle_t *)&c->tcp, &fd);
  if (rc < 0) return rc;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  return uv_tcp_bind(&c->tcp, (const struct sockaddr *)&e->src, 0);
}

int wsc_connect(wsc_engine_t *e, const char *path, void *user) {
  if (e->freeing) return -ECANCELED;
  wsc_client_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->eng = e;
  c->user = user;
  uint8_t key[16];
  for (int i = 0; i < 4; i++) {
    uint32_t r = rng_next(e);
    memcpy(key + 4 * i, &r, 4);
  }
  char key64[25];
  sodium_bin2base64(key64, sizeof key64, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
  int rc = ws_accept_key(key64, 24, c->accept);
  if (rc == 0) {
    buf_printf(&c->out,
               "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
               path, e->target.host, key64);
    if (c->out.oom) rc = -ENOMEM;
  }
  if (rc == 0) rc = e->bind_src ? uv_tcp_init_ex(e->loop, &c->tcp, AF_INET) : uv_tcp_init(e->loop, &c->tcp);
  if (rc < 0) {
    buf_free(&c->out);
    free(c);
    return rc;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->creq.data = c;
  c->next = e->all;
  if (e->all) e->all->prev = c;
  e->all = c;
  e->live++;
  rc = e->bind_src ? bind_source(e, c) : 0;
  if (rc == 0) rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&e->target.addr, on_connect);
  if (rc < 0) {
    c->notified = true; /* a failed call fires no callback */
    c->st = ST_DONE;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    return rc;
  }
  return 0;
}

static void on_sweep(uv_timer_t *t) {
  wsc_engine_t *e = t->data;
  uint64_t now = uv_now(e->loop);
  for (wsc_client_t *c = e->all, *n; c; c = n) {
    n = c->next;
    if (c->st == ST_CLOSING && now >= c->close_deadline) finish(c, WS_CLOSE_ABNORMAL, -ETIMEDOUT);
  }
}

wsc_engine_t *wsc_engine_new(uv_loop_t *loop, const target_t *t, const wsc_callbacks_t *cb) {
  if (sodium_init() < 0) return NULL;
  wsc_engine_t *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->loop = loop;
  e->target = *t;
  e->cb = *cb;
  randombytes_buf(&e->rng, sizeof e->rng);
  e->rng |= 1;
  uv_prepare_init(loop, &e->flush);
  e->flush.data = e;
  uv_prepare_start(&e->flush, on_prepare);
  uv_timer_init(loop, &e->sweep);
  e->sweep.data = e;
  uv_timer_start(&e->sweep, on_sweep, 250, 250);
  return e;
}

size_t wsc_engine_live(const wsc_engine_t *e) { return e->live; }

static void on_engine_handle_closed(uv_handle_t *h) {
  wsc_engine_t *e = h->data;
  if (--e->handles_open == 0 && e->live == 0) free(e);
}

void wsc_engine_free(wsc_engine_t *e) {
  e->freeing = true;
  for (wsc_client_t *c = e->all, *n; c; c = n) {
    n = c->next;
    finish(c, WS_CLOSE_ABNORMAL, -ECANCELED);
  }
  /* Output still queued is dropped: the run is over. */
  e->handles_open = 2;
  uv_close((uv_handle_t *)&e->flush, on_engine_handle_closed);
  uv_close((uv_handle_t *)&e->sweep, on_engine_handle_closed);
}
