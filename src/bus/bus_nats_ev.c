/*
 * bus_nats_ev.c — libnats socket events on a libuv loop (see the header for
 * why this is not Debian's adapter).
 */
#include "bus/bus_nats_ev.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
  uv_poll_t poll;
  int fd; /* our dup, closed with the handle */
  bus_nats_ev_t *ev;
} evpoll_t;

static void on_poll(uv_poll_t *h, int status, int events) {
  bus_nats_ev_t *ev = ((evpoll_t *)h)->ev;
  /* An error on the socket is libnats's to discover: reading makes it see
   * the failure and start reconnecting. */
  if (status < 0 || (events & UV_READABLE)) natsConnection_ProcessReadEvent(ev->nc);
  if (status == 0 && (events & UV_WRITABLE)) natsConnection_ProcessWriteEvent(ev->nc);
}

static void on_handle_closed(uv_handle_t *h) {
  bus_nats_ev_t *ev = h->data;
  if (h != (uv_handle_t *)&ev->async) {
    evpoll_t *p = (evpoll_t *)h;
    close(p->fd);
    free(p);
  }
  if (--ev->open_handles == 0 && ev->on_closed) ev->on_closed(ev->arg);
}

static void poll_drop(bus_nats_ev_t *ev) {
  if (!ev->poll) return;
  ev->poll->data = ev;
  uv_close((uv_handle_t *)ev->poll, on_handle_closed); /* stops it at once */
  ev->poll = NULL;
  ev->poll_events = 0;
}

/* Loop thread only: makes the uv state match the wanted one. */
static void apply(bus_nats_ev_t *ev) {
  uv_mutex_lock(&ev->mu);
  unsigned gen = ev->gen;
  int fd = ev->want_fd, events = ev->want_events;
  bool detach = ev->detach_req;
  uv_mutex_unlock(&ev->mu);

  if (ev->detached) return;
  if (detach) {
    poll_drop(ev);
    ev->detached = true;
    ev->on_detached(ev->arg);
    return;
  }
  if (gen != ev->applied_gen) {
    poll_drop(ev);
    ev->applied_gen = gen;
    /* If libnats already closed it, dup fails and we poll nothing: libnats
     * is then already reconnecting and will attach again. */
    int dfd = fd >= 0 ? dup(fd) : -1;
    if (dfd >= 0) {
      evpoll_t *p = malloc(sizeof *p);
      if (p && uv_poll_init(ev->loop, &p->poll, dfd) == 0) {
        p->fd = dfd;
        p->ev = ev;
        ev->poll = &p->poll;
        ev->open_handles++;
      } else {
        free(p);
        close(dfd);
      }
    }
  }
  if (ev->poll && events != ev->poll_events) {
    if (events)
      uv_poll_start(ev->poll, events, on_poll);
    else
      uv_poll_stop(ev->poll);
    ev->poll_events = events;
  }
}

static void on_async(uv_async_t *h) { apply(h->data); }

/* Called with ev->mu held, after changing the wanted state. */
static natsStatus kick_locked(bus_nats_ev_t *ev) {
  if (uv_thread_equal(&ev->loop_thread, &(uv_thread_t){uv_thread_self()})) {
    uv_mutex_unlock(&ev->mu);
    apply(ev);
    return NATS_OK;
  }
  /* sent under the lock: once the loop has seen detach_req under the same
   * lock, no thread is still about to touch the async handle */
  int rc = uv_async_send(&ev->async);
  uv_mutex_unlock(&ev->mu);
  return rc == 0 ? NATS_OK : NATS_ERR;
}

int bus_nats_ev_init(bus_nats_ev_t *ev, uv_loop_t *loop, void (*on_detached)(void *arg),
                     void *arg) {
  *ev = (bus_nats_ev_t){.loop = loop, .want_fd = -1, .on_detached = on_detached, .arg = arg};
  ev->loop_thread = uv_thread_self();
  int rc = uv_mutex_init(&ev->mu);
  if (rc < 0) return rc;
  rc = uv_async_init(loop, &ev->async, on_async);
  if (rc < 0) {
    uv_mutex_destroy(&ev->mu);
    return rc;
  }
  ev->async.data = ev;
  ev->open_handles = 1;
  return 0;
}

bool bus_nats_ev_must_wait(bus_nats_ev_t *ev) {
  uv_mutex_lock(&ev->mu);
  bool attached = ev->attached;
  uv_mutex_unlock(&ev->mu);
  return attached && !ev->detached;
}

void bus_nats_ev_close(bus_nats_ev_t *ev, void (*on_closed)(void *arg)) {
  ev->on_closed = on_closed;
  poll_drop(ev);
  uv_mutex_destroy(&ev->mu);
  uv_close((uv_handle_t *)&ev->async, on_handle_closed);
}

natsStatus bus_nats_ev_attach(void **user, void *loop, natsConnection *nc, natsSock fd) {
  bus_nats_ev_t *ev = loop;
  *user = ev;
  uv_mutex_lock(&ev->mu);
  ev->nc = nc;
  ev->want_fd = fd;
  ev->gen++;
  ev->want_events = UV_READABLE; /* libnats expects reads to be on after attach */
  ev->attached = true;
  return kick_locked(ev);
}

static natsStatus set_interest(void *user, int bit, bool add) {
  bus_nats_ev_t *ev = user;
  uv_mutex_lock(&ev->mu);
  if (add)
    ev->want_events |= bit;
  else
    ev->want_events &= ~bit;
  return kick_locked(ev);
}

natsStatus bus_nats_ev_read(void *user, bool add) { return set_interest(user, UV_READABLE, add); }

natsStatus bus_nats_ev_write(void *user, bool add) { return set_interest(user, UV_WRITABLE, add); }

natsStatus bus_nats_ev_detach(void *user) {
  bus_nats_ev_t *ev = user;
  uv_mutex_lock(&ev->mu);
  ev->detach_req = true;
  ev->want_events = 0;
  return kick_locked(ev);
}
