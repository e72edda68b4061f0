/*
 * chatmix.h — the shape of a `chat` run: which users sit in which
 * conversations (channels of several sizes, DMs), and which action a user
 * takes next (weighted pick).
 *
 * Contract:
 * - Pure and deterministic: the same users, classes, DMs and seed give the
 *   same layout, so the parent builds it once before forking and every
 *   worker reads the same one.
 * - Classes: "COUNTxSIZE,..." (SIZE a number, or '*' for every user), at
 *   most CHAT_MAX_CLASSES; channel k of a class takes SIZE consecutive
 *   users of a random permutation of all users (starting at k*SIZE,
 *   wrapping), so members are distinct and spread evenly.
 * - DMs: that many distinct random pairs.
 * - Weights: "send=W,typing=W,history=W,read=W" (missing ones are 0, each
 *   0..1000, not all 0). chat_pick maps a uniform 32-bit number to an action
 *   with probability weight/total (exactly: the number is scaled to
 *   [0, total) and looked up in the cumulative weights).
 * - Errors: -EINVAL (or -E2BIG past a bound, -ENOMEM) with a message in
 *   `err`. chat_layout_free releases a layout built or half-built.
 */
#ifndef STORM_LOAD_CHATMIX_H
#define STORM_LOAD_CHATMIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAT_MAX_CLASSES 8
#define CHAT_MAX_MEMBERSHIPS 2000000 /* all channels' members together */
#define CHAT_MAX_CONVS_PER_USER 1000 /* the gateway delivers 1,000 channels per connection */
#define CHAT_MAX_WEIGHT 1000

typedef struct {
  unsigned count, size; /* size 0 with all: every user */
  bool all;
} chat_class_t;

enum chat_action { CHAT_SEND, CHAT_TYPING, CHAT_HISTORY, CHAT_READ, CHAT_NACTIONS };

typedef struct {
  unsigned w[CHAT_NACTIONS];
  unsigned total;
} chat_weights_t;

typedef struct {
  unsigned users, nconvs, nchannels; /* conversations [0, nchannels) are channels, the rest DMs */
  uint32_t *conv_off;  /* nconvs + 1: members of conversation c are members[conv_off[c] .. conv_off[c+1]) */
  uint32_t *members;   /* the first member creates the channel (or opens the DM) */
  uint32_t *user_off;  /* users + 1: conversations of user u are user_convs[user_off[u] .. user_off[u+1]) */
  uint32_t *user_convs;
  long long *conv_id;  /* nconvs: STORM channel ids, filled by the setup */
} chat_layout_t;

extern const char *const chat_action_names[CHAT_NACTIONS];

/* One big channel of everyone, users/50 channels of 50 (from 100 users
 * on: below, they would be as big as the big one), and max(1, users/5) of
 * min(5, users). */
void chat_default_classes(unsigned users, chat_class_t *out, unsigned *n);
int chat_parse_classes(const char *spec, unsigned users, chat_class_t *out, unsigned *n, char *err, size_t errlen);
int chat_parse_weights(const char *spec, chat_weights_t *w, char *err, size_t errlen);
void chat_default_weights(chat_weights_t *w); /* send 50, typing 30, history 10, read 10 */
enum chat_action chat_pick(const chat_weights_t *w, uint32_t r);

int chat_layout_build(chat_layout_t *l, unsigned users, const chat_class_t *cls, unsigned ncls, unsigned dms,
                      uint64_t seed, char *err, size_t errlen);
void chat_layout_free(chat_layout_t *l);
static inline unsigned chat_conv_size(const chat_layout_t *l, unsigned c) { return l->conv_off[c + 1] - l->conv_off[c]; }

/* xorshift64*: the layout's and the workers' random numbers (not crypto). */
uint64_t chat_rand(uint64_t *state);

#endif
