/*
 * outq.c — corked output: per-connection chunk queues, written with one
 * writev per connection before the loop polls, in slices of bounded time.
 *
 * Why corking: on loopback a send costs ~6 µs of kernel time whatever its
 * size, so ten messages to one client in one iteration must be one syscall,
 * not ten. Why uv_try_write first: most flushes fit in the socket buffer, so
 * no uv_write_t is allocated and nothing is copied; only the rest goes
 * through uv_write, whose completion flushes again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/conn.h"

/* One writev takes up to IOV_MAX (Linux: 1024) chunks. A connection with a
 * backlog of small frames (e.g. presence fanned out while 10,000 members of
 * one channel connect: ~55M frames of ~100 bytes) then needs one syscall
 * where 64 needed sixteen, all inside one prepare callback that stalls the
 * loop. Measured in S1 at 10,000 members (2 runs each): hello p99 11 s ->
 * 4-6 s, connect-phase CPU per frame 0.25-0.39 -> 0.24-0.25 us. The array
 * is 16 KiB of stack on the loop thread only. */
#define FLUSH_MAX_IOV 1024

static net_chunk_t *outq_at(const net_conn_t *c, uint16_t i) {
  return c->outq[(uint16_t)((c->outq_head + i) % c->outq_cap)];
}

static int outq_grow(net_conn_t *c) {
  uint32_t cap = c->outq_cap ? (uint32_t)c->outq_cap * 2 : 4;
  if (cap > UINT16_MAX) return -ENOBUFS;
  net_chunk_t **q = malloc(cap * sizeof *q);
  if (!q) return -ENOMEM;
  for (uint16_t i = 0; i < c->outq_len; i++) q[i] = outq_at(c, i);
  free(c->outq);
  c->outq = q;
  c->outq_cap = (uint16_t)cap;
  c->outq_head = 0;
  return 0;
}

/* Appends: the list is a FIFO, so a connection written this turn that
 * gets more output waits behind the ones not yet written (see flush_list). */
void conn_schedule_flush(net_conn_t *c) {
  if (c->flags & CONN_F_FLUSH_QUEUED) return;
  net_server_t *s = c->srv;
  c->flags |= CONN_F_FLUSH_QUEUED;
  c->flush_next = NULL;
  if (s->flush_tail) s->flush_tail->flush_next = c;
  else s->flush_list = c;
  s->flush_tail = c;
}

static net_conn_t *flush_pop(net_server_t *s) {
  net_conn_t *c = s->flush_list;
  s->flush_list = c->flush_next;
  if (!s->flush_list) s->flush_tail = NULL;
  c->flush_next = NULL;
  return c;
}

int conn_enqueue(net_conn_t *c, net_chunk_t *chunk) {
  if (c->flags & CONN_F_CLOSED) return -EPIPE;
  if (c->outq_len == c->outq_cap) {
    int rc = outq_grow(c);
    if (rc < 0) return rc;
  }
  c->outq[(uint16_t)((c->outq_head + c->outq_len) % c->outq_cap)] = net_chunk_ref(chunk);
  c->outq_len++;
  c->out_bytes += chunk->len;
  conn_schedule_flush(c);
  return 0;
}

/* Drops n written bytes from the front of the queue. */
static void outq_consume(net_conn_t *c, size_t n) {
  c->out_bytes -= n;
  metrics_add(c->srv->m_bytes_out, (double)n);
  while (n > 0 && c->outq_len > 0) {
    net_chunk_t *ch = c->outq[c->outq_head];
    size_t left = ch->len - c->out_off;
    if (n < left) {
      c->out_off += (uint32_t)n;
      return;
    }
    n -= left;
    net_chunk_unref(ch);
    c->out_off = 0;
    c->outq_head = (uint16_t)((c->outq_head + 1) % c->outq_cap);
    c->outq_len--;
  }
}

static int build_iov(net_conn_t *c, uv_buf_t *iov, size_t *total) {
  int n = 0;
  *total = 0;
  for (uint16_t i = 0; i < c->outq_len && n < FLUSH_MAX_IOV; i++) {
    net_chunk_t *ch = outq_at(c, i);
    size_t off = i == 0 ? c->out_off : 0;
    iov[n] = uv_buf_init(ch->data + off, (unsigned)(ch->len - off));
    *total += ch->len - off;
    n++;
  }
  return n;
}

static void conn_flush(net_conn_t *c);

static void after_flush(net_conn_t *c) {
  if (c->outq_len == 0) {
    /* Output buffers exist only while data is pending. */
    free(c->outq);
    free(c->wreq);
    c->outq = NULL;
    c->wreq = NULL;
    c->outq_cap = c->outq_head = 0;
    if (c->flags & CONN_F_CLOSE_AFTER_FLUSH) conn_close(c);
  }
}

static void on_write(uv_write_t *req, int status) {
  net_conn_t *c = req->data;
  size_t bytes = 0;
  for (uint16_t i = 0; i < c->writing; i++) {
    net_chunk_t *ch = outq_at(c, i);
    bytes += ch->len - (i == 0 ? c->out_off : 0);
  }
  c->writing = 0;
  if (c->flags & CONN_F_CLOSED) {
    /* conn_outq_free left the queue for us: the write owned it. */
    free(req);
    c->wreq = NULL;
    conn_outq_free(c);
    return;
  }
  if (status < 0) {
    conn_close(c);
    return;
  }
  outq_consume(c, bytes);
  if (c->outq_len > 0)
    conn_flush(c);
  else
    after_flush(c);
  if (!(c->flags & CONN_F_CLOSED)) http_conn_output_progress(c);
}

/* uv_try_write without its writev: sendmsg skips the VFS layer. Only
 * called with no uv_write pending (c->writing == 0), which is the one
 * thing uv_try_write checks for a connected TCP stream. */
static int try_send(net_conn_t *c, uv_buf_t *iov, int n) {
  uv_os_fd_t fd;
  if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) < 0) return UV_EBADF;
  struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
  ssize_t w;
  do w = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w >= 0) return (int)w;
  return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : -errno;
}

static void conn_flush(net_conn_t *c) {
  if (c->writing || c->outq_len == 0 || (c->flags & CONN_F_CLOSED)) return;
  uv_buf_t iov[FLUSH_MAX_IOV];
  size_t total;
  int n = build_iov(c, iov, &total);
  int w = try_send(c, iov, n);
  if (w < 0 && w != UV_EAGAIN) {
    conn_close(c);
    return;
  }
  if (w > 0) outq_consume(c, (size_t)w);
  if (c->outq_len == 0) {
    after_flush(c);
    return;
  }
  if (w > 0 && (size_t)w == total) {
    /* More chunks than one iov batch: go round again. */
    conn_schedule_flush(c);
    return;
  }
  /* The kernel is full: hand the rest of this batch to uv_write, which
   * completes when the peer drains; on_write continues from there. */
  n = build_iov(c, iov, &total);
  if (!c->wreq) {
    c->wreq = malloc(sizeof *c->wreq);
    if (!c->wreq) {
      conn_close(c);
      return;
    }
  }
  c->wreq->data = c;
  if (uv_write(c->wreq, (uv_stream_t *)&c->tcp, iov, (unsigned)n, on_write) < 0) {
    conn_close(c);
    return;
  }
  c->writing = (uint16_t)n;
  if (c->state == CONN_WS) c->u.ws.write_since_ms = (uint32_t)server_now(c->srv);
  /* The kernel refused part of it: now the backlog counts. */
  ws_conn_check_backlog(c);
}

/*
 * Batching under load. Every loop turn writes each connection that got
 * output once, so a loop that turns faster makes more, smaller writes: in
 * S2 (100 rooms x 10 members) at the same 1.17 M deliveries/s STORM made
 * 130,000 writev/s of ~9 frames where Bun made 107,000 of ~11, and near
 * saturation it paid 0.78 us per delivery against Bun's 0.58. So when the
 * last turn was long (>= 1 ms) and busy (asleep in epoll for at most a
 * tenth of it), a WebSocket connection with little queued output
 * (<= DEFER_MAX_BYTES) is written on the next turn instead, with whatever
 * that turn adds. Once only: a connection put off is written at the next
 * prepare whatever happens, and while any is put off an idle handle keeps
 * the loop from sleeping, so the added delay is one turn, and only while
 * the loop is saturated (an idle server writes at once, as before).
 */
#define DEFER_MAX_BYTES (16 * 1024)
#define DEFER_MIN_TURN_NS 1000000

static bool loop_saturated(net_server_t *s) {
  uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(s->loop);
  uint64_t turn = now - s->turn_ns, slept = idle - s->turn_idle_ns;
  s->turn_ns = now;
  s->turn_idle_ns = idle;
  return turn >= DEFER_MIN_TURN_NS && slept * 10 <= turn;
}

static bool put_off(const net_conn_t *c) {
  return !c->deferred && c->state == CONN_WS && !c->writing && c->out_bytes <= DEFER_MAX_BYTES &&
         !(c->flags & (CONN_F_CLOSED | CONN_F_CLOSE_AFTER_FLUSH));
}

static void nudge_noop(uv_idle_t *h) { (void)h; }

/*
 * Write slices. Writing to the 10,000 members of one room takes ~60 ms on
 * loopback (~6 us a send). When a prepare flushed the whole list, a
 * message that arrived meanwhile waited for the end of that pass and then
 * for its own, so the last member got it up to two passes late. Now a
 * prepare writes for opts.write_slice_ns (--write-slice-us) at most and
 * the loop reads input between slices: a new message joins the queues of
 * the members not written yet (one send carries both), and those already
 * written line up behind them (the list is a FIFO), so every member gets
 * it within one round of the list. In S1 (10,000 members, 50 msg/s) that
 * took delivery p99 from 157 to 92-106 ms for the same number of sends.
 * The cost is one epoll_wait per slice.
 */
#define FLUSH_CLOCK_EVERY 32 /* connections between two reads of the clock */

/*
 * Write duty. While the list does not empty within a slice the loop is
 * behind: every member's queue is written once per round of the list, and
 * a round is as fast as the kernel's sends. Sends cost the same whatever
 * they carry (~6 us on loopback), so after opts.write_duty percent of such
 * writing the loop pauses for 1 ms (it still reads input meanwhile) and
 * each send then carries more messages. In S1 at 90 % the server's CPU
 * per delivery fell from 1.97 to 1.83 s per million and delivery p99 rose
 * from ~90 to ~100 ms (Bun's: 150-170 ms, at 1.9-2.0 s). An idle server,
 * or one whose list empties, never pauses.
 */
#define PAUSE_MS 1

static void pause_end(uv_timer_t *t) {
  net_server_t *s = t->data;
  s->paused = false;
}

/* Counts slice_ns of writing that left the list non-empty; true when the
 * loop has been behind long enough to pause. */
static bool pause_due(net_server_t *s, uint64_t spent_ns) {
  int duty = s->opts.write_duty;
  if (duty <= 0 || duty >= 100) return false;
  s->behind_ns += spent_ns;
  if (s->behind_ns < (uint64_t)duty * PAUSE_MS * 1000000 / (uint64_t)(100 - duty)) return false;
  s->behind_ns = 0;
  return true;
}

/* slice_ns 0: until the list is empty. */
static void flush_list(net_server_t *s, bool batch, uint64_t slice_ns) {
  net_conn_t *later = NULL, *later_last = NULL;
  uint64_t start = slice_ns ? uv_hrtime() : 0;
  unsigned since_clock = 0;
  while (s->flush_list) {
    if (slice_ns && ++since_clock == FLUSH_CLOCK_EVERY) {
      since_clock = 0;
      if (uv_hrtime() - start >= slice_ns) break;
    }
    net_conn_t *c = flush_pop(s);
    if (c->state == CONN_FREED) { /* its handle closed meanwhile (server.c) */
      conn_free(c);
      continue;
    }
    if (batch && put_off(c)) {
      c->deferred = 1; /* stays FLUSH_QUEUED: nothing enqueues it twice */
      if (later_last) later_last->flush_next = c;
      else later = c;
      later_last = c;
      continue;
    }
    c->flags &= (uint8_t)~CONN_F_FLUSH_QUEUED;
    c->deferred = 0;
    if (!(c->flags & CONN_F_CLOSED)) conn_flush(c);
    if (!(c->flags & CONN_F_CLOSED)) http_conn_output_progress(c);
  }
  if (later) { /* behind what is left: they were put off by one turn */
    if (s->flush_tail) s->flush_tail->flush_next = later;
    else s->flush_list = later;
    s->flush_tail = later_last;
  }
  if (!s->flush_list) s->behind_ns = 0;
  if (s->flush_list && slice_ns && pause_due(s, uv_hrtime() - start)) {
    /* loop->time is from before the slice: a timer set from it would be
     * due already and the loop would not sleep. */
    uv_update_time(s->loop);
    uv_timer_start(&s->pause, pause_end, PAUSE_MS, 0);
    s->paused = true;
    if (uv_is_active((uv_handle_t *)&s->nudge)) uv_idle_stop(&s->nudge);
    return;
  }
  /* Work left (put off, or past the slice): the loop must not sleep. */
  if (s->flush_list && !uv_is_active((uv_handle_t *)&s->nudge))
    uv_idle_start(&s->nudge, nudge_noop);
  else if (!s->flush_list && uv_is_active((uv_handle_t *)&s->nudge))
    uv_idle_stop(&s->nudge);
}

void server_flush_all(net_server_t *s) { flush_list(s, false, 0); }

void server_on_prepare(uv_prepare_t *p) {
  net_server_t *s = p->data;
  if (s->paused) return;
  flush_list(s, loop_saturated(s), s->opts.write_slice_ns);
}

void conn_drop_unsent(net_conn_t *c) {
  /* Keep the chunks a write is using and a partially written first chunk
   * (dropping it would cut a frame in half on the wire). */
  uint16_t keep = c->writing ? c->writing : (c->out_off ? 1 : 0);
  while (c->outq_len > keep) {
    uint16_t last = (uint16_t)((c->outq_head + c->outq_len - 1) % c->outq_cap);
    net_chunk_t *ch = c->outq[last];
    c->out_bytes -= ch->len;
    net_chunk_unref(ch);
    c->outq_len--;
  }
}

void conn_outq_free(net_conn_t *c) {
  /* A pending uv_write still points into the chunks: on_write frees them
   * (libuv calls it with UV_ECANCELED when the handle closes). */
  if (c->writing) return;
  for (uint16_t i = 0; i < c->outq_len; i++) net_chunk_unref(outq_at(c, i));
  free(c->outq);
  free(c->wreq);
  c->outq = NULL;
  c->wreq = NULL;
  c->outq_len = c->outq_cap = c->outq_head = 0;
  c->out_bytes = 0;
}
