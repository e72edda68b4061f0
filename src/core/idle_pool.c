/* idle_pool.c — see idle_pool.h for why this exists next to libuv's pool. */
#include "core/idle_pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"

#define COMPONENT "idle_pool"
#define MAX_THREADS 64

typedef struct {
  idle_work_t *head, *tail;
} fifo_t;

struct idle_pool {
  uv_loop_t *loop;
  int efd;         /* written by threads when `done` gains items */
  uv_poll_t poll;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* todo gained an item, or closing */
  fifo_t todo;       /* queued, not started */
  fifo_t done;       /* finished or cancelled, after not yet run */
  int pending;       /* queued + running + done-not-reported: loop only */
  bool closing;      /* under mu */
  void (*close_cb)(void *arg);
  void *close_arg;
  int nthreads;
  pthread_t threads[MAX_THREADS];
};

static void fifo_push(fifo_t *f, idle_work_t *w) {
  w->next = NULL;
  if (f->tail)
    f->tail->next = w;
  else
    f->head = w;
  f->tail = w;
}

static idle_work_t *fifo_pop(fifo_t *f) {
  idle_work_t *w = f->head;
  if (w) {
    f->head = w->next;
    if (!f->head) f->tail = NULL;
    w->next = NULL;
  }
  return w;
}

static bool fifo_remove(fifo_t *f, idle_work_t *w) {
  idle_work_t *prev = NULL;
  for (idle_work_t *it = f->head; it; prev = it, it = it->next) {
    if (it != w) continue;
    if (prev)
      prev->next = it->next;
    else
      f->head = it->next;
    if (f->tail == it) f->tail = prev;
    it->next = NULL;
    return true;
  }
  return false;
}

/* An eventfd write never blocks the writer for long and leaves no state
 * for the loop to wait on: the loop reads the counter and the list. */
static void wake_loop(idle_pool_t *p) {
  uint64_t one = 1;
  ssize_t n;
  do n = write(p->efd, &one, sizeof one);
  while (n < 0 && errno == EINTR);
  /* EAGAIN means the counter is already non-zero: the loop will look. */
}

static void lower_priority(void) {
  if (setpriority(PRIO_PROCESS, 0, 10) != 0)
    log_debug(COMPONENT, "setpriority(10) failed: %s", strerror(errno));
  struct sched_param sp = {0};
  if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
    log_debug(COMPONENT, "SCHED_IDLE refused: %s", strerror(errno));
}

static void *thread_main(void *arg) {
  idle_pool_t *p = arg;
  lower_priority();
  pthread_mutex_lock(&p->mu);
  for (;;) {
    idle_work_t *w = fifo_pop(&p->todo);
    if (!w) {
      if (p->closing) break;
      pthread_cond_wait(&p->cv, &p->mu);
      continue;
    }
    pthread_mutex_unlock(&p->mu);
    w->work(w);
    w->status = 0;
    pthread_mutex_lock(&p->mu);
    fifo_push(&p->done, w);
    wake_loop(p);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void on_poll_closed(uv_handle_t *h) {
  idle_pool_t *p = h->data;
  void (*cb)(void *) = p->close_cb;
  void *arg = p->close_arg;
  close(p->efd);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
  if (cb) cb(arg);
}

/* Joins and frees once closing and every after callback has run. Only
 * the loop writes `closing`, so it reads it without the lock. */
static void maybe_finish(idle_pool_t *p) {
  if (!p->closing) {
    if (p->pending == 0) uv_unref((uv_handle_t *)&p->poll);
    return;
  }
  if (p->pending > 0 || uv_is_closing((uv_handle_t *)&p->poll)) return;
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
  uv_close((uv_handle_t *)&p->poll, on_poll_closed);
}

static void drain(idle_pool_t *p) {
  uint64_t n;
  while (read(p->efd, &n, sizeof n) < 0 && errno == EINTR) {
  }
  pthread_mutex_lock(&p->mu);
  fifo_t done = p->done;
  p->done = (fifo_t){0};
  pthread_mutex_unlock(&p->mu);
  idle_work_t *w;
  while ((w = fifo_pop(&done))) {
    p->pending--;
    w->after(w, w->status);
  }
  maybe_finish(p);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  drain(h->data);
}

int idle_pool_open(uv_loop_t *loop, int nthreads, idle_pool_t **out) {
  if (!loop || !out || nthreads < 1 || nthreads > MAX_THREADS) return -EINVAL;
  idle_pool_t *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  p->loop = loop;
  p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->efd < 0) {
    int e = -errno;
    free(p);
    return e;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  int rc = uv_poll_init(loop, &p->poll, p->efd);
  if (rc == 0) {
    p->poll.data = p;
    rc = uv_poll_start(&p->poll, UV_READABLE, on_poll);
  }
  if (rc < 0) {
    /* An initialised handle must be closed before the memory goes. */
    p->closing = true;
    p->close_cb = NULL;
    uv_close((uv_handle_t *)&p->poll, on_poll_closed);
    return rc;
  }
  for (; p->nthreads < nthreads; p->nthreads++) {
    rc = pthread_create(&p->threads[p->nthreads], NULL, thread_main, p);
    if (rc != 0) {
      idle_pool_close(p, NULL, NULL);
      return -rc;
    }
  }
  uv_unref((uv_handle_t *)&p->poll); /* an idle pool keeps no loop alive */
  *out = p;
  return 0;
}

int idle_pool_queue(idle_pool_t *p, idle_work_t *w, idle_work_cb work, idle_after_cb after) {
  if (!p || !w || !work || !after) return -EINVAL;
  pthread_mutex_lock(&p->mu);
  bool closing = p->closing;
  if (!closing) {
    w->work = work;
    w->after = after;
    fifo_push(&p->todo, w);
    pthread_cond_signal(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
  if (closing) return -EINVAL;
  if (p->pending++ == 0) uv_ref((uv_handle_t *)&p->poll); /* work in flight keeps the loop */
  return 0;
}

int idle_pool_cancel(idle_pool_t *p, idle_work_t *w) {
  pthread_mutex_lock(&p->mu);
  bool found = fifo_remove(&p->todo, w);
  if (found) {
    w->status = UV_ECANCELED;
    fifo_push(&p->done, w);
    wake_loop(p);
  }
  pthread_mutex_unlock(&p->mu);
  return found ? 0 : -EBUSY;
}

void idle_pool_close(idle_pool_t *p, void (*done)(void *arg), void *arg) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->closing = true;
  idle_work_t *w;
  while ((w = fifo_pop(&p->todo))) {
    w->status = UV_ECANCELED;
    fifo_push(&p->done, w);
  }
  wake_loop(p);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  p->close_cb = done;
  p->close_arg = arg;
  uv_ref((uv_handle_t *)&p->poll);
  /* The rest happens in drain: after callbacks, then the join (which
   * cannot wait long: threads exit once todo is empty and closing). */
}
