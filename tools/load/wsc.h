/*
 * wsc.h — the WebSocket client engine of storm-load (libuv, one loop).
 *
 * Contract:
 * - A wsc_engine_t belongs to one uv loop and one thread; every callback
 *   runs on that loop. It is designed to be instantiated once per worker
 *   process (a later `--procs N` forks workers that each run an engine,
 *   optionally binding source addresses 127.0.0.2...).
 * - wsc_connect starts one client: TCP connect (from the engine's source
 *   address if wsc_engine_bind set one), the upgrade to GET PATH (e.g.
 *   "/ws?access_token=T" for STORM, "/ws?room=C" for a peer), then frames. The engine owns the client;
 *   the caller's `user` pointer is handed back in every callback.
 * - on_open: the 101 was received and Sec-WebSocket-Accept verified.
 *   on_text: one complete text message (payload borrowed for the call);
 *   wsc_read_us tells when the read that brought it returned.
 *   on_close: exactly once per client that got past wsc_connect, with the
 *   close code received (1006 if none) and err (0, a -errno, a negative
 *   enum ws_error, or WSC_ERR_HANDSHAKE with the HTTP status in `code`).
 *   After on_close the client is freed once libuv closes its handle: do not
 *   touch it again.
 * - Writes are corked: wsc_send_text appends a masked frame (a fresh
 *   random mask per frame) to the client's output, and all clients' output
 *   is written once per loop iteration (uv_prepare), one write per client.
 * - Server pings are answered with pongs; a server close is echoed.
 */
#ifndef STORM_LOAD_WSC_H
#define STORM_LOAD_WSC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "load/target.h"

#define WSC_ERR_HANDSHAKE (-2001) /* non-101 answer; code = HTTP status (0 if unparsable) */

typedef struct wsc_client wsc_client_t;
typedef struct wsc_engine wsc_engine_t;

typedef struct {
  void (*on_open)(wsc_client_t *c, void *user);
  void (*on_text)(wsc_client_t *c, void *user, const char *data, size_t len);
  void (*on_close)(wsc_client_t *c, void *user, int code, int err);
} wsc_callbacks_t;

/* Returns NULL on allocation failure. */
wsc_engine_t *wsc_engine_new(uv_loop_t *loop, const target_t *t, const wsc_callbacks_t *cb);
/* Closes every client (on_close fires with err -ECANCELED for those still
 * open), then frees the engine once the loop has run the close callbacks:
 * call it, then run the loop until it returns. */
void wsc_engine_free(wsc_engine_t *e);
size_t wsc_engine_live(const wsc_engine_t *e);
/* Later connections bind this source address (port chosen at connect, so
 * each source address has its own ephemeral port range). */
void wsc_engine_bind(wsc_engine_t *e, const struct sockaddr_in *src);

/* When the read being parsed returned (µs of uv_hrtime): one clock read
 * per read, not per message, since a read brings many corked frames. */
uint64_t wsc_read_us(const wsc_client_t *c);

/* 0 or -errno (the client then does not exist and no callback fires). */
int wsc_connect(wsc_engine_t *e, const char *path, void *user);
/* Queues a text message; -ENOTCONN before on_open / after close, -ENOMEM. */
int wsc_send_text(wsc_client_t *c, const char *data, size_t len);
/* Sends a close frame with `code` and closes after the server's answer (or 2 s). */
void wsc_close(wsc_client_t *c, uint16_t code);

#endif
