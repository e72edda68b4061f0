/* test_idle_pool.c — core/idle_pool: order, thread priority, cancel, close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>

#include "core/idle_pool.h"

#define N 16

typedef struct {
  idle_work_t w;
  int id;
  int policy;           /* seen by the work callback */
  int nice;
  pthread_t ran_on;
  int status;
  int after_calls;
  int *order;           /* shared: ids in after order */
  int *norder;
  sem_t *gate;          /* work waits on it when set */
  sem_t *started;       /* work posts it when set */
} job_t;

static pthread_t loop_thread;

static void work(idle_work_t *w) {
  job_t *j = (job_t *)w;
  j->policy = sched_getscheduler(0);
  j->nice = getpriority(PRIO_PROCESS, 0);
  j->ran_on = pthread_self();
  if (j->started) sem_post(j->started);
  if (j->gate) sem_wait(j->gate);
}

static void after(idle_work_t *w, int status) {
  job_t *j = (job_t *)w;
  assert_true(pthread_equal(pthread_self(), loop_thread));
  j->status = status;
  j->after_calls++;
  j->order[(*j->norder)++] = j->id;
}

static void on_closed(void *arg) { (*(int *)arg)++; }

static void init_jobs(job_t *jobs, int n, int *order, int *norder) {
  memset(jobs, 0, sizeof *jobs * (size_t)n);
  for (int i = 0; i < n; i++) {
    jobs[i].id = i;
    jobs[i].order = order;
    jobs[i].norder = norder;
    jobs[i].status = -12345;
  }
}

/* One thread: FIFO, every after once with 0, work off the loop thread at
 * idle priority; close then frees and calls done once. */
static void test_fifo_priority_close(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  loop_thread = pthread_self();
  idle_pool_t *p = NULL;
  assert_int_equal(idle_pool_open(&loop, 1, &p), 0);
  job_t jobs[N];
  int order[N], norder = 0;
  init_jobs(jobs, N, order, &norder);
  for (int i = 0; i < N; i++) assert_int_equal(idle_pool_queue(p, &jobs[i].w, work, after), 0);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns once every after ran: the pool unrefs */
  assert_int_equal(norder, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(order[i], i);
    assert_int_equal(jobs[i].status, 0);
    assert_int_equal(jobs[i].after_calls, 1);
    assert_false(pthread_equal(jobs[i].ran_on, loop_thread));
    /* SCHED_IDLE where allowed, nice 10 at least otherwise. */
    assert_true(jobs[i].policy == SCHED_IDLE || jobs[i].nice >= 10);
  }
  int closed = 0;
  idle_pool_close(p, on_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Cancel takes back what has not started (after: UV_ECANCELED), refuses a
 * running job; close cancels the rest and lets the running one finish. */
static void test_cancel_and_close_with_work(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  loop_thread = pthread_self();
  idle_pool_t *p = NULL;
  assert_int_equal(idle_pool_open(&loop, 1, &p), 0);
  sem_t gate, started;
  sem_init(&gate, 0, 0);
  sem_init(&started, 0, 0);
  job_t jobs[4];
  int order[4], norder = 0;
  init_jobs(jobs, 4, order, &norder);
  jobs[0].gate = &gate;
  jobs[0].started = &started;
  for (int i = 0; i < 4; i++) assert_int_equal(idle_pool_queue(p, &jobs[i].w, work, after), 0);
  sem_wait(&started); /* job 0 runs and blocks: 1..3 wait */
  assert_int_equal(idle_pool_cancel(p, &jobs[0].w), -EBUSY);
  assert_int_equal(idle_pool_cancel(p, &jobs[2].w), 0);
  assert_int_equal(idle_pool_cancel(p, &jobs[2].w), -EBUSY); /* already taken back */
  int closed = 0;
  idle_pool_close(p, on_closed, &closed);
  assert_int_equal(idle_pool_queue(p, &jobs[2].w, work, after), -EINVAL); /* closing */
  sem_post(&gate);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(norder, 4);
  assert_int_equal(jobs[0].status, 0);
  assert_int_equal(jobs[1].status, UV_ECANCELED);
  assert_int_equal(jobs[2].status, UV_ECANCELED);
  assert_int_equal(jobs[3].status, UV_ECANCELED);
  for (int i = 0; i < 4; i++) assert_int_equal(jobs[i].after_calls, 1);
  sem_destroy(&gate);
  sem_destroy(&started);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Several threads: every job runs exactly once. */
static void test_many_threads(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  loop_thread = pthread_self();
  idle_pool_t *p = NULL;
  assert_int_equal(idle_pool_open(&loop, 4, &p), 0);
  enum { M = 200 };
  static job_t jobs[M];
  int order[M], norder = 0;
  init_jobs(jobs, M, order, &norder);
  for (int i = 0; i < M; i++) assert_int_equal(idle_pool_queue(p, &jobs[i].w, work, after), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(norder, M);
  for (int i = 0; i < M; i++) assert_int_equal(jobs[i].after_calls, 1);
  int closed = 0;
  idle_pool_close(p, on_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_args(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  idle_pool_t *p = NULL;
  assert_int_equal(idle_pool_open(&loop, 0, &p), -EINVAL);
  assert_int_equal(idle_pool_open(&loop, 65, &p), -EINVAL);
  assert_int_equal(idle_pool_open(NULL, 1, &p), -EINVAL);
  assert_int_equal(idle_pool_queue(NULL, NULL, work, after), -EINVAL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fifo_priority_close),
      cmocka_unit_test(test_cancel_and_close_with_work),
      cmocka_unit_test(test_many_threads),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
