/*
 * gateway_map.c — see gateway_map.h. Keys are channel and user ids, which
 * are small sequential integers: the splitmix64 finaliser spreads them so
 * consecutive ids do not form one long probe run.
 */
#include "services/gateway/gateway_map.h"

#include <errno.h>
#include <stdlib.h>

#define MAP_MIN_CAP 16

static size_t hash(uint64_t k, size_t mask) {
  k ^= k >> 30;
  k *= 0xbf58476d1ce4e5b9ULL;
  k ^= k >> 27;
  k *= 0x94d049bb133111ebULL;
  k ^= k >> 31;
  return (size_t)k & mask;
}

void *gw_map_get(const gw_map_t *m, uint64_t key) {
  if (!m->cap || key == 0) return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = hash(key, mask);; i = (i + 1) & mask) {
    if (m->slots[i].key == key) return m->slots[i].val;
    if (m->slots[i].key == 0) return NULL;
  }
}

/* Places an entry known to be absent into a table with room. */
static void place(gw_map_slot_t *slots, size_t cap, uint64_t key, void *val) {
  size_t mask = cap - 1;
  size_t i = hash(key, mask);
  while (slots[i].key) i = (i + 1) & mask;
  slots[i].key = key;
  slots[i].val = val;
}

static int resize(gw_map_t *m, size_t cap) {
  gw_map_slot_t *s = calloc(cap, sizeof *s);
  if (!s) return -ENOMEM;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key) place(s, cap, m->slots[i].key, m->slots[i].val);
  free(m->slots);
  m->slots = s;
  m->cap = cap;
  return 0;
}

int gw_map_put(gw_map_t *m, uint64_t key, void *val) {
  if (key == 0 || !val) return -EINVAL;
  if (gw_map_get(m, key)) return -EEXIST;
  if ((m->n + 1) * 4 > m->cap * 3) {
    int rc = resize(m, m->cap ? m->cap * 2 : MAP_MIN_CAP);
    if (rc < 0) return rc;
  }
  place(m->slots, m->cap, key, val);
  m->n++;
  return 0;
}

void *gw_map_del(gw_map_t *m, uint64_t key) {
  if (!m->cap || key == 0) return NULL;
  size_t mask = m->cap - 1;
  size_t i = hash(key, mask);
  while (m->slots[i].key != key) {
    if (m->slots[i].key == 0) return NULL;
    i = (i + 1) & mask;
  }
  void *val = m->slots[i].val;
  /* Backward shift: pull later entries of the run into the hole unless
   * their home lies cyclically in (hole, j]: then moving them would put
   * them before their home and lookups would miss them. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
    size_t home = hash(m->slots[j].key, mask);
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      m->slots[hole] = m->slots[j];
      hole = j;
    }
  }
  m->slots[hole].key = 0;
  m->slots[hole].val = NULL;
  m->n--;
  if (m->n == 0) {
    gw_map_free(m);
  } else if (m->cap > MAP_MIN_CAP && m->n * 8 < m->cap) {
    resize(m, m->cap / 2); /* on failure the bigger table simply stays */
  }
  return val;
}

void gw_map_free(gw_map_t *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->n = 0;
}
