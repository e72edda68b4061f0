/*
 * idle_pool.h — a few worker threads for long CPU work (argon2id hashes)
 * that run only when no other thread wants the CPU, and hand results back
 * to the loop without ever making the loop wait for them.
 *
 * Why not libuv's pool: its threads are shared by every uv_queue_work in
 * the process, so lowering one to SCHED_IDLE slows every later store call
 * too; and libuv 1.44 completes work with uv_async_send, whose loop side
 * spins (sched_yield) while a sender is between "pending" and "done". A
 * SCHED_IDLE sender preempted there by the very loop it just woke keeps the
 * loop spinning until another core frees up: measured as ~2 ms ping stalls
 * on a loaded 2-core host (bench/login-storm.js, docs/benchmarks.md). Here
 * completions go through a mutex-protected list and an eventfd watched with
 * uv_poll: a blocked mutex sleeps the loop (the idle thread then gets the
 * core and releases it at once), and nothing ever spins.
 *
 * Threads run under SCHED_IDLE (and nice 10 where SCHED_IDLE is refused).
 * The loop side (open, queue, cancel, close and every callback) belongs to
 * the loop thread. Work items are the caller's memory and must stay valid
 * until their `after` callback has run.
 *
 * Errors: negative errno values.
 */
#ifndef STORM_CORE_IDLE_POOL_H
#define STORM_CORE_IDLE_POOL_H

#include <uv.h>

typedef struct idle_pool idle_pool_t;
typedef struct idle_work idle_work_t;

/* Runs on a pool thread. */
typedef void (*idle_work_cb)(idle_work_t *w);
/* Runs on the loop: status 0 after work ran, UV_ECANCELED when it was
 * cancelled before starting. */
typedef void (*idle_after_cb)(idle_work_t *w, int status);

struct idle_work {
  idle_work_t *next; /* private */
  idle_work_cb work; /* private */
  idle_after_cb after;
  int status;        /* private */
};

/* Starts nthreads (1..64) threads. -EINVAL, -ENOMEM, or the errno of a
 * failed thread/eventfd creation. */
int idle_pool_open(uv_loop_t *loop, int nthreads, idle_pool_t **out);

/* Queues w (FIFO). -EINVAL when the pool is closing. */
int idle_pool_queue(idle_pool_t *p, idle_work_t *w, idle_work_cb work, idle_after_cb after);

/* Takes w back if no thread has started it: its after callback then runs
 * (from the loop, later) with UV_ECANCELED. Returns 0, or -EBUSY if it is
 * running or done. */
int idle_pool_cancel(idle_pool_t *p, idle_work_t *w);

/* Cancels what has not started, lets running work finish, runs every
 * after callback, joins the threads, frees the pool and then calls done
 * (from the loop). Queue nothing after this. */
void idle_pool_close(idle_pool_t *p, void (*done)(void *arg), void *arg);

#endif
