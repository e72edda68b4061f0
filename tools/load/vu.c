/* vu.c — see vu.h. */
#include "load/vu.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

uint64_t vu_now_us(void) { return uv_hrtime() / 1000u; }

typedef struct {
  unsigned vu;
  vu_fn fn;
  void *arg;
} vu_start_t;

static void *thread_main(void *p) {
  vu_start_t *s = p;
  s->fn(s->vu, s->arg);
  return NULL;
}

int vu_run(unsigned n, vu_fn fn, void *arg) {
  pthread_t *t = calloc(n, sizeof *t);
  vu_start_t *s = calloc(n, sizeof *s);
  int rc = 0;
  unsigned started = 0;
  if (!t || !s) rc = -ENOMEM;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 512u << 10); /* a VU needs little; 1,000 of them stay small */
  for (; rc == 0 && started < n; started++) {
    s[started] = (vu_start_t){started, fn, arg};
    int e = pthread_create(&t[started], &attr, thread_main, &s[started]);
    if (e) {
      rc = -e;
      break;
    }
  }
  pthread_attr_destroy(&attr);
  for (unsigned i = 0; i < started; i++) pthread_join(t[i], NULL);
  free(t);
  free(s);
  return rc;
}

bool vu_next(vu_ctl_t *c, uint64_t *iter) {
  if (c->deadline_us && vu_now_us() >= c->deadline_us) return false;
  uint64_t i = atomic_fetch_add(&c->claimed, 1);
  if (c->iterations && i >= c->iterations) return false;
  *iter = i;
  return true;
}

void vu_sleep_ms(const vu_ctl_t *c, unsigned ms) {
  uint64_t until = vu_now_us() + (uint64_t)ms * 1000u;
  if (c->deadline_us && until > c->deadline_us) until = c->deadline_us;
  uint64_t now = vu_now_us();
  if (until <= now) return;
  uint64_t d = until - now;
  struct timespec ts = {(time_t)(d / 1000000u), (long)(d % 1000000u) * 1000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}
