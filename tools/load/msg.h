/*
 * msg.h — the text messages storm-load sends and the few facts it reads
 * from the server's messages.
 *
 * Contract:
 * - Every sent message carries its step and send time (uv_hrtime in µs,
 *   CLOCK_MONOTONIC, so any storm-load process on the machine can compute
 *   the delivery latency) in its body: "s=<step> t=<us> i=<index> storm-load".
 *   A durable send also carries them in its ref ("<step>_<us>"), which the
 *   server echoes in the ack, and a nonce unique per run and room.
 * - msg_format_* write into `out` (size `cap`) and return the length, or
 *   -ENOSPC when it does not fit.
 * - msg_parse reads a server message without a full JSON parse: the first
 *   "op" key gives the kind; only the fields storm-load itself wrote are
 *   read back, with bounded scans (the input need not be NUL-terminated).
 *   `stamped` is false when the step/time could not be read.
 * - chat messages also carry the sender's user index in the body
 *   ("... i=<index> u=<user> storm-load"), so a member can tell its own
 *   echo from a delivery; `has_user`/`user` give it back. history and
 *   read requests carry their send time in their ref like a send.
 * - `channel` and `seq` are read from ack, message and typing events
 *   (0 when absent): chat marks channels read up to the last seq seen.
 */
#ifndef STORM_LOAD_MSG_H
#define STORM_LOAD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum msg_kind {
  MSG_OTHER, MSG_HELLO, MSG_ERROR, MSG_ACK, MSG_MESSAGE, MSG_BROADCAST, MSG_HISTORY, MSG_READ_ACK, MSG_TYPING
};

typedef struct {
  enum msg_kind kind;
  bool stamped;
  unsigned step;
  uint64_t t_us;
  bool has_user;
  uint32_t user;
  long long channel;
  uint64_t seq;
} msg_in_t;

/* The nonce is nonce_prefix, the channel and nonce_n: pass index, or
 * msg_nonce_scatter(index) for nonces that land all over the server's
 * nonce index, as random client nonces (UUIDs) do. */
int msg_format_send(char *out, size_t cap, long long channel, unsigned step, uint64_t t_us,
                    uint64_t index, const char *nonce_prefix, uint64_t nonce_n);
uint64_t msg_nonce_scatter(uint64_t index);
int msg_format_broadcast(char *out, size_t cap, long long channel, unsigned step, uint64_t t_us,
                         uint64_t index);
/* chat: a durable send whose body also names the sending user. */
int msg_format_chat_send(char *out, size_t cap, long long channel, unsigned step, uint64_t t_us, uint64_t index,
                         uint32_t user, const char *nonce_prefix);
int msg_format_typing(char *out, size_t cap, long long channel);
int msg_format_history(char *out, size_t cap, long long channel, unsigned limit, uint64_t t_us);
int msg_format_read(char *out, size_t cap, long long channel, uint64_t seq, uint64_t t_us);
void msg_parse(const char *d, size_t n, msg_in_t *m);

#endif
