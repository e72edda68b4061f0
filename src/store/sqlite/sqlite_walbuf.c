/* sqlite_walbuf.c — contract in sqlite_walbuf.h. The layout follows
 * SQLite's own shims (ext/misc/appendvfs.c): our file object with the base
 * VFS's file right after it; files we do not buffer are the base's file
 * object alone, so they cost nothing. */
#include "store/sqlite/sqlite_walbuf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

typedef struct {
  sqlite3_file base;  /* pMethods = &wb_io */
  sqlite3_file *real; /* the base VFS's file, right after this struct */
  unsigned char *buf;
  size_t len, cap;
  sqlite3_int64 off; /* file offset of buf[0] */
} wb_file_t;

static sqlite3_vfs *g_base;
static sqlite3_vfs g_vfs;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_ok;
static _Atomic uint64_t g_flushes;

static wb_file_t *wb(sqlite3_file *p) { return (wb_file_t *)p; }
static sqlite3_file *real(sqlite3_file *p) { return wb(p)->real; }

/* The unix VFS writes at most 0x1ffff bytes per call (and reports a
 * longer write as short: SQLITE_FULL), hence pieces of 124 KiB. */
#define WB_PIECE (124u * 1024)

static int write_pieces(sqlite3_file *f, const unsigned char *p, size_t n, sqlite3_int64 off) {
  int rc = SQLITE_OK;
  for (size_t at = 0; at < n && rc == SQLITE_OK; at += WB_PIECE) {
    size_t k = n - at < WB_PIECE ? n - at : WB_PIECE;
    rc = f->pMethods->xWrite(f, p + at, (int)k, off + (sqlite3_int64)at);
  }
  return rc;
}

/* The buffer is dropped even when the write fails: SQLite fails the
 * transaction, and its next attempt writes every frame again. */
static int wb_flush(wb_file_t *f) {
  if (f->len == 0) return SQLITE_OK;
  int rc = write_pieces(f->real, f->buf, f->len, f->off);
  f->len = 0;
  atomic_fetch_add_explicit(&g_flushes, 1, memory_order_relaxed);
  return rc;
}

static int wb_close(sqlite3_file *p) {
  wb_file_t *f = wb(p);
  int rc = wb_flush(f);
  int rc2 = f->real->pMethods->xClose(f->real);
  free(f->buf);
  f->buf = NULL;
  f->cap = 0;
  return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *p, void *out, int amt, sqlite3_int64 ofst) {
  wb_file_t *f = wb(p);
  if (f->len && ofst < f->off + (sqlite3_int64)f->len && ofst + amt > f->off) {
    int rc = wb_flush(f);
    if (rc != SQLITE_OK) return rc;
  }
  return f->real->pMethods->xRead(f->real, out, amt, ofst);
}

static int wb_grow(wb_file_t *f, size_t need) {
  size_t cap = f->cap ? f->cap : 64 * 1024;
  while (cap < need) cap *= 2;
  unsigned char *b = realloc(f->buf, cap);
  if (!b) return -1;
  f->buf = b;
  f->cap = cap;
  return 0;
}

static int wb_write(sqlite3_file *p, const void *data, int amt, sqlite3_int64 ofst) {
  wb_file_t *f = wb(p);
  size_t n = amt > 0 ? (size_t)amt : 0;
  bool joins = f->len && ofst >= f->off && ofst <= f->off + (sqlite3_int64)f->len;
  size_t at = joins ? (size_t)(ofst - f->off) : 0;
  if (!joins || at + n > SQLITE_WALBUF_MAX) {
    int rc = wb_flush(f);
    if (rc != SQLITE_OK) return rc;
    f->off = ofst;
    at = 0;
  }
  if (at + n > SQLITE_WALBUF_MAX || (at + n > f->cap && wb_grow(f, at + n) < 0)) {
    /* Too big to gather, or no memory to: the buffer is empty or holds
     * bytes before ofst, so writing them first keeps the order. */
    int rc = wb_flush(f);
    if (rc != SQLITE_OK) return rc;
    return write_pieces(f->real, data, n, ofst);
  }
  memcpy(f->buf + at, data, n);
  if (at + n > f->len) f->len = at + n;
  return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *p, sqlite3_int64 size) {
  int rc = wb_flush(wb(p));
  return rc != SQLITE_OK ? rc : real(p)->pMethods->xTruncate(real(p), size);
}

static int wb_sync(sqlite3_file *p, int flags) {
  int rc = wb_flush(wb(p));
  return rc != SQLITE_OK ? rc : real(p)->pMethods->xSync(real(p), flags);
}

static int wb_file_size(sqlite3_file *p, sqlite3_int64 *size) {
  int rc = wb_flush(wb(p));
  return rc != SQLITE_OK ? rc : real(p)->pMethods->xFileSize(real(p), size);
}

static int wb_lock(sqlite3_file *p, int lock) { return real(p)->pMethods->xLock(real(p), lock); }

static int wb_unlock(sqlite3_file *p, int lock) {
  return real(p)->pMethods->xUnlock(real(p), lock);
}

static int wb_check_reserved(sqlite3_file *p, int *out) {
  return real(p)->pMethods->xCheckReservedLock(real(p), out);
}

/* Flushed first: a size hint may write zeros past the file's end, where
 * buffered frames are headed. */
static int wb_file_control(sqlite3_file *p, int op, void *arg) {
  int rc = wb_flush(wb(p));
  return rc != SQLITE_OK ? rc : real(p)->pMethods->xFileControl(real(p), op, arg);
}

static int wb_sector_size(sqlite3_file *p) { return real(p)->pMethods->xSectorSize(real(p)); }

static int wb_device_chars(sqlite3_file *p) {
  return real(p)->pMethods->xDeviceCharacteristics(real(p));
}

static int wb_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **pp) {
  return real(p)->pMethods->xShmMap(real(p), pg, pgsz, extend, pp);
}

static int wb_shm_lock(sqlite3_file *p, int offset, int n, int flags) {
  return real(p)->pMethods->xShmLock(real(p), offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *p) { real(p)->pMethods->xShmBarrier(real(p)); }

static int wb_shm_unmap(sqlite3_file *p, int del) {
  return real(p)->pMethods->xShmUnmap(real(p), del);
}

/* Version 2: no xFetch, so SQLite never maps this file and always reads
 * through wb_read, which knows about the buffer. */
static const sqlite3_io_methods wb_io = {
    .iVersion = 2,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_chars,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
};

static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                    int *out_flags) {
  if (!(flags & SQLITE_OPEN_WAL)) return g_base->xOpen(g_base, name, file, flags, out_flags);
  wb_file_t *f = wb(file);
  memset(f, 0, sizeof *f);
  f->real = (sqlite3_file *)(f + 1);
  int rc = g_base->xOpen(g_base, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (f->real->pMethods) f->real->pMethods->xClose(f->real);
    f->base.pMethods = NULL; /* SQLite then never calls our xClose */
    return rc;
  }
  f->base.pMethods = &wb_io;
  return SQLITE_OK;
}

/* Every other VFS method is the base's, called with the base as its VFS
 * (some of the unix VFS's methods read their own sqlite3_vfs). */
static int vfs_delete(sqlite3_vfs *v, const char *name, int sync_dir) {
  return g_base->xDelete(g_base, name, sync_dir);
}
static int vfs_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
  return g_base->xAccess(g_base, name, flags, out);
}
static int vfs_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) {
  return g_base->xFullPathname(g_base, name, n, out);
}
static void *vfs_dl_open(sqlite3_vfs *v, const char *path) {
  return g_base->xDlOpen(g_base, path);
}
static void vfs_dl_error(sqlite3_vfs *v, int n, char *msg) { g_base->xDlError(g_base, n, msg); }
static void (*vfs_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void) {
  return g_base->xDlSym(g_base, h, sym);
}
static void vfs_dl_close(sqlite3_vfs *v, void *h) { g_base->xDlClose(g_base, h); }
static int vfs_randomness(sqlite3_vfs *v, int n, char *out) {
  return g_base->xRandomness(g_base, n, out);
}
static int vfs_sleep(sqlite3_vfs *v, int us) { return g_base->xSleep(g_base, us); }
static int vfs_current_time(sqlite3_vfs *v, double *out) {
  return g_base->xCurrentTime(g_base, out);
}
static int vfs_last_error(sqlite3_vfs *v, int n, char *out) {
  return g_base->xGetLastError(g_base, n, out);
}
static int vfs_current_time_i64(sqlite3_vfs *v, sqlite3_int64 *out) {
  return g_base->xCurrentTimeInt64(g_base, out);
}
static int vfs_set_syscall(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr fn) {
  return g_base->xSetSystemCall(g_base, name, fn);
}
static sqlite3_syscall_ptr vfs_get_syscall(sqlite3_vfs *v, const char *name) {
  return g_base->xGetSystemCall(g_base, name);
}
static const char *vfs_next_syscall(sqlite3_vfs *v, const char *name) {
  return g_base->xNextSystemCall(g_base, name);
}

static void do_register(void) {
  if (sqlite3_initialize() != SQLITE_OK) return;
  g_base = sqlite3_vfs_find(NULL);
  /* The forwards above assume the version-3 methods exist (the unix VFS
   * has had them since 3.7.6). */
  if (!g_base || g_base->iVersion < 3) return;
  g_vfs = (sqlite3_vfs){
      .iVersion = 3,
      .szOsFile = (int)sizeof(wb_file_t) + g_base->szOsFile,
      .mxPathname = g_base->mxPathname,
      .zName = SQLITE_WALBUF_VFS,
      .xOpen = vfs_open,
      .xDelete = vfs_delete,
      .xAccess = vfs_access,
      .xFullPathname = vfs_full_pathname,
      .xDlOpen = vfs_dl_open,
      .xDlError = vfs_dl_error,
      .xDlSym = vfs_dl_sym,
      .xDlClose = vfs_dl_close,
      .xRandomness = vfs_randomness,
      .xSleep = vfs_sleep,
      .xCurrentTime = vfs_current_time,
      .xGetLastError = vfs_last_error,
      .xCurrentTimeInt64 = vfs_current_time_i64,
      .xSetSystemCall = vfs_set_syscall,
      .xGetSystemCall = vfs_get_syscall,
      .xNextSystemCall = vfs_next_syscall,
  };
  g_ok = sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK;
}

const char *sqlite_walbuf_vfs(void) {
  pthread_once(&g_once, do_register);
  return g_ok ? SQLITE_WALBUF_VFS : NULL;
}

uint64_t sqlite_walbuf_flushes(void) {
  return atomic_load_explicit(&g_flushes, memory_order_relaxed);
}
